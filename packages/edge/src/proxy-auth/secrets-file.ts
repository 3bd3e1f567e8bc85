/**
 * The secrets file of the explicit proxy's service credentials (`--proxy-auth FILE`): which token names
 * which service. Kept apart from the policy, which is reviewed, diffed and logged by hash; tokens are
 * not. Two forms, so that a Kubernetes Secret per service can be mounted as it is:
 *
 * - a YAML or JSON file: `services: { payments: [TOKEN or sha256:HEX, ...] }` (several entries while a
 *   token is rotated);
 * - a directory: one file per service, named after it, holding its entries one per line (the keys of
 *   Secrets projected into one volume). Names starting with `.` (Kubernetes' `..data` links) are skipped.
 *
 * An entry is the token itself, or `sha256:` and the hex SHA-256 of the token, so that the file need not
 * hold the token at all. Only SHA-256 digests are kept in memory. No message ever quotes an entry.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { EdgeConfigError } from '../config.js';

/** Service name → SHA-256 digests of its tokens. */
export type CredentialTable = ReadonlyMap<string, readonly Buffer[]>;

/** What {@link readSecretsFile} found. */
export interface SecretsFile {
  credentials: CredentialTable;
  /** Things to fix that do not stop the edge (a file every user can read). */
  warnings: string[];
}

/** A secrets file the edge cannot use: every problem, none quoting a secret (an `EdgeConfigError`, as the CLI reports them). */
export class SecretsFileError extends EdgeConfigError {
  constructor(
    readonly file: string,
    problems: readonly string[],
  ) {
    super(problems, `proxy credentials file ${file}`);
    this.name = 'SecretsFileError';
  }
}

/** A service name as a Basic user name can carry it (no `:`), and as policy `services` keys are written. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$/;
/** Shortest token accepted: 16 characters (`openssl rand -hex 32` gives 64). */
export const MIN_TOKEN_LENGTH = 16;
/**
 * Token characters: RFC 6750's token68 (a Bearer token as is) minus nothing a URL's user information
 * would need escaped except `+`, `/` and `=`, which curl and Node pass through percent-decoded.
 */
const TOKEN = /^[A-Za-z0-9._~+/=-]+$/;
const DIGEST = /^sha256:([0-9a-fA-F]{64})$/;

/** SHA-256 of a token: what is kept and compared. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Reads the secrets file or directory at `path`.
 *
 * @throws {@link SecretsFileError} listing every problem (unreadable, bad syntax, bad service name, an
 * entry that is neither a 16+ character token nor `sha256:` and 64 hex digits, a token given to two
 * services, a service without tokens, no service at all).
 */
export function readSecretsFile(path: string): SecretsFile {
  const problems: string[] = [];
  const warnings: string[] = [];
  const entries = new Map<string, string[]>();
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new SecretsFileError(path, [
      `cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    ]);
  }
  const checkMode = (file: string, mode: number) => {
    if ((mode & 0o004) !== 0) {
      warnings.push(
        `${file} is readable by every user of this host (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): make it 0600 or 0640 (Kubernetes: defaultMode: 0400)`,
      );
    }
  };
  if (stat.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name.startsWith('.')) continue;
      const file = join(path, name);
      try {
        const s = statSync(file);
        if (!s.isFile()) continue;
        checkMode(file, s.mode);
        entries.set(
          name,
          readFileSync(file, 'utf8')
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => l !== '' && !l.startsWith('#')),
        );
      } catch (error) {
        problems.push(`${name}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
  } else {
    checkMode(path, stat.mode);
    let data: unknown;
    try {
      data = parseYaml(readFileSync(path, 'utf8'), { maxAliasCount: 0 });
    } catch (error) {
      // The parser's message may quote the line: give only where it is.
      const at = (error as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
      throw new SecretsFileError(path, [
        `not valid YAML or JSON${at ? ` at line ${at.line}, column ${at.col}` : ''}`,
      ]);
    }
    const services = isMapping(data) ? data.services : undefined;
    if (!isMapping(data) || Object.keys(data).some((k) => k !== 'services') || !isMapping(services)) {
      throw new SecretsFileError(path, [
        'expected one key, services: a mapping of service name to its tokens (a token, or a list of them)',
      ]);
    }
    for (const [name, value] of Object.entries(services)) {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
        problems.push(`services.${name}: expected a token or a list of tokens`);
        continue;
      }
      entries.set(name, list as string[]);
    }
  }

  const credentials = new Map<string, Buffer[]>();
  const owner = new Map<string, string>();
  for (const [name, list] of entries) {
    const where = stat.isDirectory() ? name : `services.${name}`;
    if (!SERVICE_NAME.test(name)) {
      problems.push(`${where}: a service name is letters, digits, ".", "_" and "-" (no ":")`);
      continue;
    }
    if (list.length === 0) problems.push(`${where}: no token`);
    const digests: Buffer[] = [];
    list.forEach((entry, i) => {
      const digest = DIGEST.exec(entry);
      let value: Buffer;
      if (digest) value = Buffer.from(digest[1]!, 'hex');
      else if (entry.length >= MIN_TOKEN_LENGTH && TOKEN.test(entry)) value = tokenDigest(entry);
      else {
        problems.push(
          `${where}[${i}]: expected a token of at least ${MIN_TOKEN_LENGTH} characters (letters, digits, . _ ~ + / = -) or sha256: and 64 hex digits`,
        );
        return;
      }
      const key = value.toString('hex');
      const other = owner.get(key);
      if (other !== undefined && other !== name) {
        problems.push(`${where}[${i}]: the same token is given to ${other}: a token must name one service`);
      }
      owner.set(key, name);
      digests.push(value);
    });
    credentials.set(name, digests);
  }
  if (credentials.size === 0 && problems.length === 0) problems.push('no service has credentials');
  if (problems.length > 0) throw new SecretsFileError(path, problems);
  return { credentials, warnings };
}

/**
 * What changes when the secrets change: the identity, size and modification time of the file, or of each
 * file of the directory (following links: Kubernetes updates a projected volume by swapping the `..data`
 * link, which gives every file a new identity). `missing` when it cannot be read.
 */
export function secretsIdentity(path: string): string {
  const of = (s: Stats) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  try {
    const stat = statSync(path);
    if (!stat.isDirectory()) return of(stat);
    const parts: string[] = [];
    for (const name of readdirSync(path).sort()) {
      if (name.startsWith('.')) continue;
      try {
        parts.push(`${name}=${of(statSync(join(path, name)))}`);
      } catch {
        parts.push(`${name}=missing`);
      }
    }
    return parts.join(',');
  } catch {
    return 'missing';
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
