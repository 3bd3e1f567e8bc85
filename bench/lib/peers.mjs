// The edge's peers (nginx stream ssl_preread, HAProxy req.ssl_sni, sniproxy): configured from the
// templates in bench/peers/, rendered into a run directory with free loopback ports, started in the
// foreground with a raised open-file limit, stopped by pid. Installed by bench/install-peers.sh.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NOFILE, startPeer } from './proc.mjs';

const peersDir = fileURLToPath(new URL('../peers/', import.meta.url));

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function render(template, vars, out) {
  let text = readFileSync(join(peersDir, template), 'utf8');
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{{${k}}}`, String(v));
  if (/\{\{\w+\}\}/.test(text)) throw new Error(`${template}: unfilled ${/\{\{\w+\}\}/.exec(text)[0]}`);
  writeFileSync(out, text);
  return out;
}

const PEERS = {
  nginx: {
    label: 'nginx stream `ssl_preread`',
    template: 'nginx.conf',
    cmd: (conf, dir) => ['nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf]],
  },
  haproxy: {
    label: 'HAProxy `req.ssl_sni`',
    template: 'haproxy.cfg',
    cmd: (conf) => ['haproxy', ['-db', '-f', conf]],
  },
  sniproxy: {
    label: 'sniproxy',
    template: 'sniproxy.conf',
    cmd: (conf) => ['sniproxy', ['-f', '-c', conf]],
  },
};

export const PEER_NAMES = Object.keys(PEERS);
export const peerLabel = (name) => PEERS[name].label;

/** Starts one peer routing `name` to 127.0.0.1:upstreamPort; resolves with `{ name, label, port, pid, stop }`. */
export async function startPeerProxy(peer, { upstreamPort, name, runDir }) {
  const spec = PEERS[peer];
  const dir = join(runDir, peer);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = render(
    spec.template,
    {
      PORT: port,
      UPSTREAM_PORT: upstreamPort,
      NAME: name,
      NAME_REGEX: name.replaceAll('.', '\\.'),
      RUN_DIR: dir,
      NOFILE,
      // two sockets per flow, and some files of its own
      MAXCONN: Math.floor((NOFILE - 40) / 2),
    },
    join(dir, spec.template),
  );
  const [cmd, args] = spec.cmd(conf, dir);
  const p = await startPeer(peer, cmd, args, { port, nofile: NOFILE });
  return { ...p, name: peer, label: spec.label, port };
}

/** Installed peer versions, for the report. */
export function peerVersions() {
  const out = {};
  const first = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim();
  };
  out.nginx = first('nginx', ['-v']).replace(/^nginx version: /, '');
  out.haproxy = first('haproxy', ['-v'])
    .replace(/ - https.*$/, '')
    .replace(/^HAProxy version /, 'HAProxy ');
  try {
    out.sniproxy = `sniproxy ${execFileSync('dpkg-query', ['-W', `-f=\${Version}`, 'sniproxy'], { encoding: 'utf8' })}`;
  } catch {
    out.sniproxy = 'sniproxy';
  }
  return out;
}

/** Runs bench/install-peers.sh (apt-get install when something is missing). Returns whether all are there. */
export function installPeers(log = console.log) {
  const r = spawnSync('bash', [fileURLToPath(new URL('../install-peers.sh', import.meta.url))], {
    encoding: 'utf8',
  });
  for (const line of `${r.stdout}${r.stderr}`.split('\n').filter(Boolean)) log(`  ${line}`);
  return r.status === 0;
}
