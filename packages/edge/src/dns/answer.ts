/**
 * Reads the upstream's answer and keeps what the client may see: the CNAME chain from the name asked,
 * followed in the answer section (bounded), the records of the asked type at its end, their signatures,
 * and the SOA of a negative answer. Everything else (records about other names, glue, the upstream's
 * additional section) is dropped, so an answer cannot smuggle addresses for names nobody asked about.
 * HTTPS/SVCB lose their `ech` parameter. The addresses (A, AAAA and SVCB hints) are listed for the
 * caller to check against the policy and to keep as bindings.
 *
 * dns-packet decodes the message, after limits that bound its work: its name decoder only follows
 * pointers backwards (no loop), and with at most {@link MAX_UPSTREAM_ANSWER_BYTES} bytes and
 * {@link MAX_RECORDS} records the longest pointer chains stay small.
 */
import * as dnsPacket from 'dns-packet';
import { stripEch } from './svcb.js';
import { MAX_UPSTREAM_ANSWER_BYTES } from './upstream.js';
import { FLAG, TYPE, typeName } from './wire.js';

/** Records (all sections) an upstream answer may carry; more is treated as no answer. */
export const MAX_RECORDS = 512;
/** CNAME hops followed from the name asked. */
export const MAX_CNAME_HOPS = 16;

/** One address the client would get, with the owner name and TTL of its record. */
export interface AnsweredAddress {
  address: string;
  owner: string;
  ttl: number;
}

/** What the guard passes on. */
export interface FilteredAnswer {
  rcode: number;
  /** RA and AD as the upstream set them. */
  flags: number;
  answers: dnsPacket.Answer[];
  authorities: dnsPacket.Answer[];
  addresses: AnsweredAddress[];
  /** Names along the CNAME chain, the asked name first, lower case. */
  chain: string[];
  echRemoved: boolean;
}

const lower = (name: string) => name.toLowerCase().replace(/\.$/, '');

/**
 * Decodes `message` (an answer to `qname`/`qtype`) and filters it; undefined when it cannot be read
 * within the limits (the caller answers SERVFAIL).
 */
export function filterAnswer(message: Buffer, qname: string, qtype: number): FilteredAnswer | undefined {
  if (message.length < 12 || message.length > MAX_UPSTREAM_ANSWER_BYTES) return undefined;
  const records = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  if (records > MAX_RECORDS) return undefined;
  let packet: dnsPacket.DecodedPacket;
  try {
    packet = dnsPacket.decode(message);
  } catch {
    return undefined;
  }
  const rawFlags = message.readUInt16BE(2);
  const rcode = rawFlags & 0xf;
  const flags = rawFlags & (FLAG.RA | FLAG.AD);
  const answers = (packet.answers ?? []) as DecodedRecord[];
  const wanted = typeName(qtype);

  const chain = [lower(qname)];
  const kept: dnsPacket.Answer[] = [];
  const addresses: AnsweredAddress[] = [];
  let echRemoved = false;
  let current = chain[0]!;
  // Follow the chain: a CNAME owned by the current name moves it on (unless CNAME itself was asked).
  for (let hop = 0; hop < MAX_CNAME_HOPS && qtype !== TYPE.CNAME && qtype !== TYPE.ANY; hop++) {
    const cname = answers.find((r) => r.type === 'CNAME' && lower(r.name) === current);
    if (!cname || typeof cname.data !== 'string') break;
    kept.push(cname as dnsPacket.Answer);
    current = lower(cname.data);
    if (chain.includes(current)) break;
    chain.push(current);
  }
  const onChain = new Set(chain);
  for (const r of answers) {
    if (!onChain.has(lower(r.name))) continue;
    if (r.type === 'CNAME' && kept.includes(r as dnsPacket.Answer)) continue;
    const covered = r.type === 'RRSIG' ? (r.data as { typeCovered?: string }).typeCovered : undefined;
    if (covered !== undefined) {
      if (covered === wanted || covered === 'CNAME') kept.push(r as dnsPacket.Answer);
      continue;
    }
    const owner = lower(r.name);
    // The asked type at the end of the chain; ANY and CNAME take what the name itself owns.
    if (qtype !== TYPE.ANY && (owner !== current || recordTypeCode(r) !== qtype)) continue;
    if (r.type === 'A' || r.type === 'AAAA') {
      addresses.push({ address: String(r.data), owner, ttl: r.ttl ?? 0 });
      kept.push(r as dnsPacket.Answer);
    } else if (recordTypeCode(r) === TYPE.HTTPS || recordTypeCode(r) === TYPE.SVCB) {
      const binding = Buffer.isBuffer(r.data) ? stripEch(r.data) : undefined;
      if (!binding) continue;
      echRemoved ||= binding.echRemoved;
      for (const address of binding.hints) addresses.push({ address, owner, ttl: r.ttl ?? 0 });
      kept.push({ ...r, data: binding.rdata } as dnsPacket.Answer);
    } else kept.push(r as dnsPacket.Answer);
  }
  const authorities = ((packet.authorities ?? []) as DecodedRecord[]).filter(
    (r) => r.type === 'SOA',
  ) as dnsPacket.Answer[];
  return { rcode, flags, answers: kept, authorities, addresses, chain, echRemoved };
}

interface DecodedRecord {
  type: string;
  name: string;
  ttl?: number;
  class?: string;
  data?: unknown;
}

function recordTypeCode(r: DecodedRecord): number {
  const known = (TYPE as Record<string, number>)[r.type];
  if (known !== undefined) return known;
  const unknown = /^UNKNOWN_(\d+)$/.exec(r.type);
  return unknown ? Number(unknown[1]) : -1;
}

// dns-packet exports its record codec, but its type definitions do not declare it.
const recordCodec = (dnsPacket as unknown as { answer: { encode(record: dnsPacket.Answer): Buffer } }).answer;

/** Encodes records for a response (dns-packet's record codec, no compression). */
export function encodeRecords(records: readonly dnsPacket.Answer[]): Buffer | undefined {
  try {
    return Buffer.concat(records.map((r) => recordCodec.encode(r)));
  } catch {
    return undefined;
  }
}
