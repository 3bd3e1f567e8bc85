/**
 * Reads a client's DNS query by hand, strictly, before anything else looks at it. A query is small and
 * has one shape (RFC 1035 4.1, RFC 6891): a header, one question, and at most one OPT record. Everything
 * else (several questions, records in the answer or authority sections, compression in the question,
 * labels over 63 bytes, names over 255, bytes past the end) is a format error, answered FORMERR when the
 * header could be read and dropped otherwise. Reading is linear in the message and never follows a
 * pointer, so no packet can make it loop.
 */
import { FLAG, TYPE } from './wire.js';

/** Queries larger than this are not read (a real one with EDNS options is a few hundred bytes). */
export const MAX_QUERY_BYTES = 4096;

/** A query the guard can decide. */
export interface DnsQuery {
  id: number;
  /** RD and CD as the client set them (copied to the response). */
  flags: number;
  /** The question's bytes exactly as sent (name, type, class): echoed in the response. */
  questionBytes: Buffer;
  /** Labels as sent (case kept, for 0x20 randomisation), each as latin1 text of its bytes. */
  labels: string[];
  /** The name, lower case, dot-joined, no trailing dot; `.` for the root. Labels with odd bytes are escaped. */
  name: string;
  /** Whether every label is printable ASCII without dots or spaces: only such names are forwarded. */
  plainName: boolean;
  qtype: number;
  qclass: number;
  /** EDNS(0) when the query carried an OPT record. */
  edns: { payload: number; dnssecOk: boolean; version: number } | undefined;
}

/** Why a message was not a query to decide: drop it, or answer with a code (header and question echoed). */
export type QueryProblem =
  | { kind: 'drop'; why: string }
  | {
      kind: 'answer';
      id: number;
      flags: number;
      questionBytes: Buffer | undefined;
      rcode: number;
      why: string;
      badVersion?: boolean;
    };

/** Reads `message`; a {@link DnsQuery}, or why not. Never throws. */
export function readQuery(message: Buffer): DnsQuery | QueryProblem {
  if (message.length < 12) return { kind: 'drop', why: 'shorter than a header' };
  if (message.length > MAX_QUERY_BYTES) return { kind: 'drop', why: 'larger than any query' };
  const id = message.readUInt16BE(0);
  const rawFlags = message.readUInt16BE(2);
  // A response sent to the guard is never answered: answering would make a reflection loop.
  if (rawFlags & FLAG.QR) return { kind: 'drop', why: 'a response, not a query' };
  const flags = rawFlags & (FLAG.RD | FLAG.CD);
  const formErr = (why: string, questionBytes?: Buffer): QueryProblem => ({
    kind: 'answer',
    id,
    flags,
    questionBytes,
    rcode: 1,
    why,
  });
  const opcode = (rawFlags >> 11) & 0xf;
  const qdcount = message.readUInt16BE(4);
  const ancount = message.readUInt16BE(6);
  const nscount = message.readUInt16BE(8);
  const arcount = message.readUInt16BE(10);
  if (qdcount !== 1) return formErr(`${qdcount} questions (exactly one is answered)`);

  // The question's name: labels only, no compression pointer (nothing precedes it to point at).
  const labels: string[] = [];
  let offset = 12;
  let nameLength = 0;
  let plainName = true;
  for (;;) {
    if (offset >= message.length) return formErr('the question runs past the end');
    const len = message[offset]!;
    offset++;
    if (len === 0) break;
    if (len > 63)
      return formErr(len >= 0xc0 ? 'a compression pointer in the question' : 'a label over 63 bytes');
    if (offset + len > message.length) return formErr('a label runs past the end');
    nameLength += len + 1;
    if (nameLength > 255) return formErr('a name over 255 bytes');
    const bytes = message.subarray(offset, offset + len);
    for (const b of bytes) if (b <= 0x20 || b >= 0x7f || b === 0x2e || b === 0x5c) plainName = false;
    labels.push(bytes.toString('latin1'));
    offset += len;
  }
  if (offset + 4 > message.length) return formErr('the question has no type or class');
  const qtype = message.readUInt16BE(offset);
  const qclass = message.readUInt16BE(offset + 2);
  offset += 4;
  const questionBytes = Buffer.from(message.subarray(12, offset));
  if (opcode !== 0) {
    return { kind: 'answer', id, flags, questionBytes, rcode: 4, why: `opcode ${opcode} (only QUERY)` };
  }
  if (ancount !== 0 || nscount !== 0)
    return formErr('records in the answer or authority section', questionBytes);
  if (arcount > 1) return formErr('more than one additional record', questionBytes);

  let edns: DnsQuery['edns'];
  if (arcount === 1) {
    // The one additional record must be OPT, owned by the root, and fit exactly.
    if (offset + 11 > message.length)
      return formErr('the additional record runs past the end', questionBytes);
    if (message[offset] !== 0) return formErr('the additional record is not OPT', questionBytes);
    const type = message.readUInt16BE(offset + 1);
    if (type !== TYPE.OPT) return formErr('the additional record is not OPT', questionBytes);
    const payload = message.readUInt16BE(offset + 3);
    const version = message[offset + 6]!;
    const dnssecOk = (message.readUInt16BE(offset + 7) & 0x8000) !== 0;
    const rdlength = message.readUInt16BE(offset + 9);
    offset += 11;
    // Options are read past, not used: the guard sends its own query, without the client's options
    // (client subnet, cookies, padding), so nothing of the client's but the question reaches upstream.
    if (offset + rdlength > message.length) return formErr('the OPT options run past the end', questionBytes);
    let o = offset;
    while (o < offset + rdlength) {
      if (o + 4 > offset + rdlength) return formErr('a truncated EDNS option', questionBytes);
      o += 4 + message.readUInt16BE(o + 2);
    }
    if (o !== offset + rdlength) return formErr('an EDNS option runs past the OPT record', questionBytes);
    offset += rdlength;
    if (version !== 0) {
      return {
        kind: 'answer',
        id,
        flags,
        questionBytes,
        rcode: 0,
        why: `EDNS version ${version}`,
        badVersion: true,
      };
    }
    edns = { payload: Math.max(payload, 512), dnssecOk, version };
  }
  if (offset !== message.length) return formErr('bytes after the last record', questionBytes);

  const name =
    labels.length === 0
      ? '.'
      : labels
          .map((l) => (plainName ? l : escapeLabel(l)))
          .join('.')
          .toLowerCase();
  return { id, flags, questionBytes, labels, name, plainName, qtype, qclass, edns };
}

/** RFC 1035 presentation escapes, so an odd label is reported as what it is and never matches a rule. */
function escapeLabel(label: string): string {
  let out = '';
  for (const ch of label) {
    const c = ch.charCodeAt(0);
    if (c <= 0x20 || c >= 0x7f) out += `\\${String(c).padStart(3, '0')}`;
    else if (ch === '.' || ch === '\\') out += `\\${ch}`;
    else out += ch;
  }
  return out;
}
