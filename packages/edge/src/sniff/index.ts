export { type ClientHelloInfo, effectiveMaxVersion, type HelloParse, parseClientHello } from './client-hello.js';
export { type DetectedProtocol, detectProtocol } from './detect.js';
export { type HttpHeadParse, parseHttpHead } from './http-request.js';
export { type ServerHelloParse, parseServerHello } from './server-hello.js';
export { parseSshBanner, type SshBannerOptions, type SshBannerParse } from './ssh-banner.js';
