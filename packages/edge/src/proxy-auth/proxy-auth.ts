/**
 * Service identity on the explicit proxy: who is asking, from the credentials a client sends with its
 * first request head, for platforms (Kubernetes) where a service's source addresses change with every
 * pod and `sources` cannot name it. When configured, credentials are required on every explicit-proxy
 * connection and the service they name wins over `sources` (docs/edge.md, "Service identity").
 */
import type { Decision } from '@egress-guard/policy';
import { readProxyAuthorization, verifyProxyAuthorization } from './credentials.js';
import { FailureLimiter, type FailureLimiterOptions } from './failure-limiter.js';
import { type CredentialTable, readSecretsFile, SecretsFileError, secretsIdentity } from './secrets-file.js';

/** Options of {@link ProxyAuth}. */
export interface ProxyAuthOptions extends FailureLimiterOptions {
  /** Where warnings go (a secrets file every user can read). Default `process.emitWarning`. */
  warn?: ((message: string) => void) | undefined;
  /**
   * Least time between two checks of the secrets for a change (a `stat` per file); a change is read at
   * once, so a rotated Secret takes effect without a signal, in every worker. Default `1000` ms.
   */
  checkIntervalMs?: number | undefined;
  /** Told when a changed file cannot be used (the credentials in force stay). */
  onRejected?: ((problems: readonly string[]) => void) | undefined;
}

/** Who a request's credentials name, or why they were not accepted. */
export type ProxyAuthResult =
  | { ok: true; service: string }
  | {
      ok: false;
      failure: 'missing' | 'invalid' | 'rate_limited';
      /** The claimed service, when it is one with credentials. */
      service?: string | undefined;
      detail: string;
      /** `rate_limited`: seconds until the source may try again. */
      retryAfter?: number | undefined;
    };

/** The realm of the challenges. */
const REALM = 'egress-guard';

/**
 * The credentials of the explicit proxy's services, read from a secrets file, checked per request head,
 * with failures limited per source.
 */
export class ProxyAuth {
  private credentials: CredentialTable;
  private readonly limiter: FailureLimiter;
  private readonly warn: (message: string) => void;
  private readonly checkInterval: number;
  private readonly now: () => number;
  private readonly onRejected: ((problems: readonly string[]) => void) | undefined;
  private identity: string;
  private nextCheck = 0;

  /** @throws {@link SecretsFileError} when the file cannot be used. */
  constructor(
    /** The secrets file or directory. */
    readonly file: string,
    options: ProxyAuthOptions = {},
  ) {
    this.limiter = new FailureLimiter(options);
    this.warn =
      options.warn ?? ((message) => process.emitWarning(message, { code: 'EGRESS_PROXY_AUTH_READABLE' }));
    this.checkInterval = options.checkIntervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.onRejected = options.onRejected;
    this.identity = secretsIdentity(file);
    this.credentials = this.read();
  }

  /** Services that have credentials. */
  get services(): string[] {
    return [...this.credentials.keys()];
  }

  /**
   * Reads the secrets file again. A file that cannot be used keeps the credentials in force (as an
   * invalid policy keeps the policy) and returns its problems, none quoting a secret.
   */
  reload(): { ok: true } | { ok: false; problems: readonly string[] } {
    this.identity = secretsIdentity(this.file);
    try {
      this.credentials = this.read();
      return { ok: true };
    } catch (error) {
      if (error instanceof SecretsFileError) return { ok: false, problems: error.problems };
      throw error;
    }
  }

  /** Checks the credentials of a request head (`head` through `headerBytes`) from `source`. */
  check(head: Buffer, headerBytes: number, source: string): ProxyAuthResult {
    this.reloadIfChanged();
    const wait = this.limiter.blockedFor(source);
    if (wait !== undefined) {
      return {
        ok: false,
        failure: 'rate_limited',
        detail: `too many failed credentials from ${source}; credentials are not checked for ${wait}s`,
        retryAfter: wait,
      };
    }
    const result = verifyProxyAuthorization(readProxyAuthorization(head, headerBytes), this.credentials);
    // A request without credentials is not a guess (clients may ask first and answer the challenge).
    if (!result.ok && result.failure === 'invalid') this.limiter.fail(source);
    return result;
  }

  private reloadIfChanged(): void {
    const now = this.now();
    if (now < this.nextCheck) return;
    this.nextCheck = now + this.checkInterval;
    if (secretsIdentity(this.file) === this.identity) return;
    const result = this.reload();
    if (!result.ok) this.onRejected?.(result.problems);
  }

  private read(): CredentialTable {
    const read = readSecretsFile(this.file);
    for (const w of read.warnings) this.warn(w);
    return read.credentials;
  }
}

/**
 * The answer to a request whose credentials were not accepted: `407 Proxy Authentication Required` with
 * both challenges (Basic and Bearer), or `429 Too Many Requests` with `Retry-After` for a source past the
 * limit. The connection is closed: a client answers a challenge on a new one.
 */
export function proxyAuthReply(decision: Decision, retryAfter?: number): string {
  const body = `${decision.message}\n`;
  const status =
    decision.reason === 'proxy_auth_rate_limited'
      ? `429 Too Many Requests\r\nretry-after: ${retryAfter ?? 60}`
      : `407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm="${REALM}", charset="UTF-8"\r\nproxy-authenticate: Bearer realm="${REALM}"`;
  return (
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\nx-egress-reason: ${decision.reason}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}
