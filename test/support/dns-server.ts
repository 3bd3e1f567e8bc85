import dgram from 'node:dgram';
import dns, { type LookupAddress, type LookupOptions } from 'node:dns';
import net, { type LookupFunction } from 'node:net';
import * as dnsPacket from 'dns-packet';

/** One resource record the test DNS server can answer with. */
export interface DnsRecord {
  type: 'A' | 'AAAA' | 'CNAME';
  /** Address for A/AAAA, target name for CNAME. */
  data: string;
  /**
   * Seconds. Default `0`: the c-ares in some Node releases (1.33, in Node 20.18) caches answers by TTL
   * inside the process, which would hide repeat queries from {@link TestDnsServer.queries} and serve stale
   * answers after {@link TestDnsServer.set}. Give a TTL only when a test is about TTLs.
   */
  ttl?: number;
}

/**
 * Answers for one name: fixed records, or a function of how many times this name has been asked for
 * the queried type (1 on the first A query, 1 on the first AAAA query, over UDP and TCP together), for
 * answers that change between the check and the connect (DNS rebinding). Records of other types than
 * the one asked are ignored, so one function can serve both A and AAAA.
 */
export type DnsAnswer = DnsRecord[] | ((queryCount: number) => DnsRecord[]);

/** One query the server received. */
export interface DnsQuery {
  /** Queried name as sent, without the trailing dot. */
  name: string;
  /** Record type, e.g. `A`, `AAAA`, `TXT`. */
  type: string;
  transport: 'udp' | 'tcp';
}

/** A loopback DNS server from {@link startDnsServer}. */
export interface TestDnsServer {
  /** UDP and TCP port (the same number on both). */
  port: number;
  /** Bound address, `127.0.0.1`. */
  address: string;
  /** Every query received, in order. An empty list proves a look-up never left the process. */
  queries: DnsQuery[];
  /** Replaces (or with `undefined`, removes) the answers for `name`. */
  set(name: string, records: DnsAnswer | undefined): void;
  /** Empties {@link TestDnsServer.queries} and the per-name query counts. */
  reset(): void;
  /** Stops both listeners. */
  close(): Promise<void>;
}

/** Lower-cases and drops a trailing dot so `API.Example.com.` and `api.example.com` are one key. */
function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * Starts an authoritative-style DNS server on UDP and TCP `127.0.0.1` (same ephemeral port) built on
 * `dns-packet`. Keys of `records` are names; a key `*.example.test` matches any name below
 * `example.test` that has no exact entry. A CNAME is followed within the table and the whole chain is
 * answered, as a recursive resolver would. Unknown names get `NXDOMAIN`; known names without records of
 * the asked type get an empty `NOERROR`. Every query is recorded, answered or not.
 */
export async function startDnsServer(records: Record<string, DnsAnswer> = {}): Promise<TestDnsServer> {
  const table = new Map<string, DnsAnswer>();
  for (const [name, answer] of Object.entries(records)) table.set(normalise(name), answer);
  const queries: DnsQuery[] = [];
  const counts = new Map<string, number>();

  const find = (name: string): DnsAnswer | undefined => {
    const exact = table.get(name);
    if (exact) return exact;
    const labels = name.split('.');
    for (let i = 1; i < labels.length; i++) {
      const wild = table.get(`*.${labels.slice(i).join('.')}`);
      if (wild) return wild;
    }
    return undefined;
  };

  const recordsFor = (name: string, queryCount: number): DnsRecord[] | undefined => {
    const answer = find(name);
    if (answer === undefined) return undefined;
    return typeof answer === 'function' ? answer(queryCount) : answer;
  };

  const respond = (query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp'): Buffer => {
    const answers: dnsPacket.Answer[] = [];
    let rcode = 0;
    for (const question of query.questions ?? []) {
      queries.push({ name: question.name, type: question.type, transport });
      const key = normalise(question.name);
      // Counted per name and type: a dual-stack look-up asks A and AAAA, and a rebinding test wants
      // "the second A query" to mean the second look-up.
      const countKey = `${key} ${question.type}`;
      const queryCount = (counts.get(countKey) ?? 0) + 1;
      counts.set(countKey, queryCount);
      let name = key;
      let owner = question.name;
      // Bounded so a CNAME loop in a test table cannot hang the server.
      for (let hops = 0; hops < 8; hops++) {
        // A function value along a CNAME chain sees the count of the name actually asked.
        const found = recordsFor(name, queryCount);
        if (found === undefined) {
          if (hops === 0) rcode = 3; // NXDOMAIN
          break;
        }
        const cname = found.find((r) => r.type === 'CNAME');
        if (cname && question.type !== 'CNAME') {
          answers.push({ type: 'CNAME', name: owner, ttl: cname.ttl ?? 0, data: cname.data });
          owner = cname.data;
          name = normalise(cname.data);
          continue;
        }
        for (const r of found) {
          if (r.type === question.type)
            answers.push({ type: r.type, name: owner, ttl: r.ttl ?? 0, data: r.data });
        }
        break;
      }
    }
    const flags =
      dnsPacket.AUTHORITATIVE_ANSWER |
      dnsPacket.RECURSION_AVAILABLE |
      ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
      // dns-packet has no rcode field on encode: it lives in the low four bits of the flags.
      rcode;
    return dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags,
      questions: query.questions ?? [],
      answers,
    });
  };

  const decode = (buf: Buffer): dnsPacket.DecodedPacket | undefined => {
    try {
      return dnsPacket.decode(buf);
    } catch {
      return undefined;
    }
  };

  const { udp, tcp, port } = await bindPair(respond, decode);
  const tcpSockets = new Set<net.Socket>();
  tcp.on('connection', (s: net.Socket) => {
    tcpSockets.add(s);
    s.once('close', () => tcpSockets.delete(s));
  });

  return {
    port,
    address: '127.0.0.1',
    queries,
    set(name, answer) {
      if (answer === undefined) table.delete(normalise(name));
      else table.set(normalise(name), answer);
    },
    reset() {
      queries.length = 0;
      counts.clear();
    },
    close() {
      for (const s of tcpSockets) s.destroy();
      return Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]).then(() => undefined);
    },
  };
}

type Responder = (query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp') => Buffer;

/**
 * Binds UDP on an ephemeral port, then TCP on the same number: resolvers retry over TCP on the same
 * port when a UDP answer is truncated. The TCP port can be taken by someone else, so retry a few times.
 */
async function bindPair(
  respond: Responder,
  decode: (buf: Buffer) => dnsPacket.DecodedPacket | undefined,
): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const query = decode(msg);
      if (query?.type !== 'query') return;
      udp.send(respond(query, 'udp'), rinfo.port, rinfo.address);
    });
    udp.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve());
    });
    const port = udp.address().port;
    const tcp = net.createServer((socket) => {
      socket.on('error', () => {});
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        // TCP DNS frames each message with a two-byte length.
        while (buffered.length >= 2) {
          const len = buffered.readUInt16BE(0);
          if (buffered.length < 2 + len) break;
          const query = decode(buffered.subarray(2, 2 + len));
          buffered = buffered.subarray(2 + len);
          if (query?.type !== 'query') continue;
          const reply = respond(query, 'tcp');
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([frame, reply]));
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp, port };
    } catch (err) {
      lastError = err;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    }
  }
  throw new Error(`could not bind UDP and TCP on one port: ${String(lastError)}`);
}

/**
 * Points Node's c-ares resolver (`dns.resolve*`, `dns.promises.resolve*`, `new dns.Resolver()` created
 * afterwards with default servers) at `server`, and returns a function that restores the previous
 * servers.
 *
 * It does NOT affect `dns.lookup`, which is what `http`, `net`, `tls` and undici use by default:
 * `dns.lookup` calls the system's getaddrinfo (`/etc/hosts`, `/etc/resolv.conf`) and ignores
 * `setServers`. To route a client's name resolution through the test server, pass
 * {@link lookupVia}(server) as its `lookup` option.
 */
export function useDnsServer(server: Pick<TestDnsServer, 'port' | 'address'>): () => void {
  const previous = dns.getServers();
  const previousPromises = dns.promises.getServers();
  const target = `${server.address}:${server.port}`;
  dns.setServers([target]);
  // Older Node releases kept a separate default resolver for the promises API; set both.
  dns.promises.setServers([target]);
  return () => {
    dns.setServers(previous);
    dns.promises.setServers(previousPromises);
  };
}

function lookupError(hostname: string, code: string): NodeJS.ErrnoException {
  // Same shape as dns.lookup's errors so code under test cannot tell the difference.
  const err: NodeJS.ErrnoException & { hostname?: string } = new Error(`getaddrinfo ${code} ${hostname}`);
  err.code = code;
  err.syscall = 'getaddrinfo';
  err.hostname = hostname;
  return err;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `dns.lookup`-compatible function that resolves through `server` (a private `dns.Resolver` with
 * `setServers`, so the process-wide resolver is left alone). Pass it as the `lookup` option of
 * `http.request`, `net.connect`, `tls.connect`, an `http.Agent`, or undici's `connect` options.
 *
 * Honours `family` (4, 6, or 0 for both, IPv4 first unless `order: 'ipv6first'`) and `all`. IP
 * literals are returned as is without a query, as `dns.lookup` does. It never reads `/etc/hosts`, so
 * `localhost` resolves only if the server has a record for it. Failures carry `code: 'ENOTFOUND'` and
 * `syscall: 'getaddrinfo'`. It keeps no cache, and with the server's default TTL 0 c-ares keeps none
 * either: every call reaches the server, which rebinding tests rely on.
 */
export function lookupVia(server: Pick<TestDnsServer, 'port' | 'address'>): LookupFunction {
  const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([`${server.address}:${server.port}`]);
  const query = (fn: 'resolve4' | 'resolve6', hostname: string): Promise<string[]> =>
    new Promise((resolve) => {
      resolver[fn](hostname, (err, addresses) => resolve(err ? [] : addresses));
    });

  const lookup = (
    hostname: string,
    optionsOrCallback: LookupOptions | number | LookupCallback,
    maybeCallback?: LookupCallback,
  ): void => {
    const callback = (
      typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback
    ) as LookupCallback;
    const options: LookupOptions =
      typeof optionsOrCallback === 'number'
        ? { family: optionsOrCallback }
        : typeof optionsOrCallback === 'object' && optionsOrCallback !== null
          ? optionsOrCallback
          : {};
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
    const literal = net.isIP(hostname.replace(/^\[|\]$/g, ''));
    const run = async (): Promise<LookupAddress[]> => {
      if (literal) return [{ address: hostname.replace(/^\[|\]$/g, ''), family: literal }];
      const [v4, v6] = await Promise.all([
        family === 6 ? [] : query('resolve4', hostname),
        family === 4 ? [] : query('resolve6', hostname),
      ]);
      const a = v4.map((address) => ({ address, family: 4 }));
      const aaaa = v6.map((address) => ({ address, family: 6 }));
      return options.order === 'ipv6first' ? [...aaaa, ...a] : [...a, ...aaaa];
    };
    run().then(
      (addresses) => {
        const first = addresses[0];
        if (!first) {
          callback(lookupError(hostname, 'ENOTFOUND'), options.all ? [] : '');
          return;
        }
        if (options.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, options.all ? [] : ''),
    );
  };
  return lookup as unknown as LookupFunction;
}
