// The DNS benchmark's upstream, in its own process: a UDP and TCP server on 127.0.0.1 that answers every A
// question with 93.184.216.34, TTL 0 (so that no forwarder can answer from its cache: every question
// measured goes through), and NXDOMAIN for anything else. Built on dns-packet like the test DNS server.
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { serve } from './lib/rpc.mjs';

let answered = 0;
// Questions for names the filters must refuse (the benchmark's refused names are under blocked.test): any
// that arrives here leaked through a filter.
let blocked = 0;
function respond(raw) {
  let q;
  try {
    q = dnsPacket.decode(raw);
  } catch {
    return undefined;
  }
  const question = q.questions?.[0];
  if (!question) return undefined;
  answered++;
  if (question.name.toLowerCase().endsWith('.blocked.test')) blocked++;
  const a = question.type === 'A';
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (a ? 0 : 3),
    questions: [question],
    answers: a ? [{ type: 'A', name: question.name, ttl: 0, data: '93.184.216.34' }] : [],
  });
}

// UDP and TCP on one port (a forwarder retries a truncated answer over TCP); the TCP port may be taken.
async function bind() {
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, rinfo) => {
      const reply = respond(msg);
      if (reply) udp.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = net.createServer((s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const reply = respond(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          if (!reply) continue;
          const frame = Buffer.alloc(2);
          frame.writeUInt16BE(reply.length);
          s.write(Buffer.concat([frame, reply]));
        }
      });
    });
    try {
      await new Promise((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', resolve);
      });
      return port;
    } catch (error) {
      udp.close();
      if (attempt > 10) throw error;
    }
  }
}
const port = await bind();
serve({ answered: () => answered, blocked: () => blocked }, { port });
