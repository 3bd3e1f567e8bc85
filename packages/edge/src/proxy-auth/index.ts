/** Service identity on the explicit proxy: credentials, their secrets file, and the limit on failures. */
export type { CredentialCheck, ProxyAuthorizationHeader } from './credentials.js';
export { readProxyAuthorization, verifyProxyAuthorization } from './credentials.js';
export { FailureLimiter, type FailureLimiterOptions } from './failure-limiter.js';
export { ProxyAuth, type ProxyAuthOptions, type ProxyAuthResult, proxyAuthReply } from './proxy-auth.js';
export {
  type CredentialTable,
  MIN_TOKEN_LENGTH,
  readSecretsFile,
  type SecretsFile,
  SecretsFileError,
  tokenDigest,
} from './secrets-file.js';
