/**
 * Test kit shared by the SDK and edge suites: a throw-away PKI, loopback servers that record what
 * reached them, a counting DNS server, a child-process runner, and port helpers.
 */
export * from './child.js';
export * from './dns-server.js';
export * from './pki.js';
export * from './ports.js';
export * from './servers.js';
