import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its private key, both PEM. */
export interface IssuedCert {
  /** Leaf certificate, PEM. */
  certPem: string;
  /** Leaf private key (EC P-256, PKCS#8), PEM. */
  keyPem: string;
  /** Where the certificate was written, for CLI clients (`curl --cert`). */
  certPath: string;
  /** Where the key was written, for CLI clients (`curl --key`). */
  keyPath: string;
}

/** Options for {@link TestPki.issue}. */
export interface IssueOptions {
  /**
   * Validity in days from now. Default `30`. A negative value yields a certificate that has already
   * expired (for tests that a client refuses it).
   */
  days?: number;
}

/** A throw-away certificate authority for loopback TLS servers. */
export interface TestPki {
  /** Folder holding `ca.pem` and every issued leaf; removed by {@link TestPki.cleanup}. */
  dir: string;
  /** Path of the CA certificate, for `curl --cacert` and `NODE_EXTRA_CA_CERTS` in child processes. */
  caCertPath: string;
  /** CA certificate, PEM. Pass as `ca` to TLS clients. */
  caCertPem: string;
  /** CA private key, PEM. */
  caKeyPem: string;
  /**
   * Issues a server leaf signed by the CA. Each entry of `names` goes into subjectAltName as `IP:` when
   * it is an IPv4/IPv6 literal and as `DNS:` otherwise; the first entry is also the subject CN.
   */
  issue(names: string[], opts?: IssueOptions): Promise<IssuedCert>;
  /** Removes {@link TestPki.dir} (or, when the caller supplied it, only the files written there). */
  cleanup(): Promise<void>;
}

interface CaMaterial {
  dir: string;
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
}

const OPENSSL = process.env.OPENSSL ?? 'openssl';

/**
 * One CA per process: generating it is the slow part, and every suite trusting the same root keeps
 * certificates from different helpers interchangeable within a test file.
 */
let caPromise: Promise<CaMaterial> | undefined;

// The config is written by hand so that results never depend on the distribution's openssl.cnf.
const CA_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = egress-guard test CA
O = egress-guard tests
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

function openssl(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(OPENSSL, args, { cwd, encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          // Tests must never be skipped silently for want of a tool: say what to install.
          reject(
            new Error(
              `The test PKI needs the openssl CLI, and "${OPENSSL}" was not found on PATH. ` +
                'Install it (Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl) ' +
                'or point the OPENSSL environment variable at the binary.',
            ),
          );
          return;
        }
        reject(new Error(`openssl ${args.join(' ')} failed: ${stderr || err.message}`));
        return;
      }
      resolve(stdout);
    });
  });
}

async function genKey(path: string, cwd: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path], cwd);
}

/**
 * Removes CA folders left by worker processes that have exited: vitest stops its workers without running
 * 'exit' handlers, so each worker also sweeps up after the dead ones when it makes its own CA.
 */
function sweepStaleCaFolders(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^egress-guard-ca-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH')
        rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

async function makeCa(): Promise<CaMaterial> {
  sweepStaleCaFolders();
  const dir = await mkdtemp(join(tmpdir(), `egress-guard-ca-${process.pid}-`));
  // The cached CA outlives any one test; remove it when the worker exits so tmp does not fill up.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const cnf = join(dir, 'ca.cnf');
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.pem');
  await writeFile(cnf, CA_CONFIG);
  await genKey(keyPath, dir);
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      keyPath,
      '-sha256',
      '-days',
      '3650',
      '-config',
      cnf,
      '-extensions',
      'v3_ca',
      '-out',
      certPath,
    ],
    dir,
  );
  return {
    dir,
    certPath,
    keyPath,
    certPem: await readFile(certPath, 'utf8'),
    keyPem: await readFile(keyPath, 'utf8'),
  };
}

function getCa(): Promise<CaMaterial> {
  if (!caPromise) {
    caPromise = makeCa();
    // A failure (say, no openssl) must not be cached forever: the next caller retries and gets the error.
    caPromise.catch(() => {
      caPromise = undefined;
    });
  }
  return caPromise;
}

function leafConfig(names: string[]): string {
  const alt: string[] = [];
  let dns = 0;
  let ip = 0;
  for (const name of names) {
    // IPv6 literals arrive bracketed from URLs; openssl wants them bare.
    const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
    if (isIP(bare)) alt.push(`IP.${++ip} = ${bare}`);
    else alt.push(`DNS.${++dns} = ${bare}`);
  }
  const first = names[0] ?? 'localhost';
  // CN is limited to 64 bytes; SAN is what clients check anyway.
  const cn = first.length <= 64 ? first : 'egress-guard test leaf';
  return `[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${cn}
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[alt]
${alt.join('\n')}
`;
}

/**
 * Creates a test PKI backed by the `openssl` CLI: EC P-256 keys and SHA-256 signatures, a CA with
 * critical `CA:TRUE`/`keyCertSign`, and leaves with `serverAuth`. The CA is generated once per process
 * and shared by every `TestPki`; each call gets its own folder holding a copy of `ca.pem`.
 *
 * @param opts.dir - Folder to write into. Default: a fresh folder under `os.tmpdir()`.
 * @throws Error when the openssl CLI is missing (install it; tests are never skipped for this).
 */
export async function createTestPki(opts: { dir?: string } = {}): Promise<TestPki> {
  const ca = await getCa();
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'egress-guard-pki-')));
  await mkdir(dir, { recursive: true });
  const caCertPath = join(dir, 'ca.pem');
  await writeFile(caCertPath, ca.certPem);
  const written = new Set<string>([caCertPath]);
  let seq = 0;

  return {
    dir,
    caCertPath,
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    async issue(names, issueOpts = {}) {
      if (names.length === 0) throw new Error('issue() needs at least one DNS name or IP address');
      const days = issueOpts.days ?? 30;
      if (!Number.isInteger(days) || days === 0)
        throw new Error(`days must be a non-zero integer, got ${days}`);
      const base = join(dir, `leaf-${++seq}`);
      const keyPath = `${base}.key`;
      const certPath = `${base}.pem`;
      const csrPath = `${base}.csr`;
      const cnfPath = `${base}.cnf`;
      for (const p of [keyPath, certPath, csrPath, cnfPath]) written.add(p);
      await writeFile(cnfPath, leafConfig(names));
      await genKey(keyPath, dir);
      await openssl(['req', '-new', '-key', keyPath, '-config', cnfPath, '-out', csrPath], dir);
      await openssl(
        [
          'x509',
          '-req',
          '-in',
          csrPath,
          '-CA',
          ca.certPath,
          '-CAkey',
          ca.keyPath,
          // A random serial avoids a shared .srl file, which parallel issue() calls would race on.
          '-set_serial',
          `0x${randomBytes(16).toString('hex')}`,
          '-days',
          String(days),
          '-sha256',
          '-extfile',
          cnfPath,
          '-extensions',
          'leaf',
          '-out',
          certPath,
        ],
        dir,
      );
      return {
        certPem: await readFile(certPath, 'utf8'),
        keyPem: await readFile(keyPath, 'utf8'),
        certPath,
        keyPath,
      };
    },
    async cleanup() {
      if (ownsDir) {
        await rm(dir, { recursive: true, force: true });
        return;
      }
      await Promise.all([...written].map((p) => rm(p, { force: true })));
    },
  };
}
