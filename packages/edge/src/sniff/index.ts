export {
  type ClientHelloInfo,
  effectiveMaxVersion,
  type HelloParse,
  parseClientHello,
} from './client-hello.js';
export { type DetectedProtocol, detectProtocol } from './detect.js';
export type { HostPort } from './host-syntax.js';
export { type HttpHeadParse, parseHttpHead } from './http-request.js';
export { parseServerHello, type ServerHelloParse } from './server-hello.js';
export { parseSshBanner, type SshBannerOptions, type SshBannerParse } from './ssh-banner.js';
