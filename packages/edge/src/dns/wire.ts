/**
 * The few DNS wire constants and names the guard needs (RFC 1035, 6891, 9460), and the responses it
 * writes itself: an error or refusal is the client's header and question echoed byte for byte, with
 * no record the guard did not build.
 */

/** Response codes the guard answers with or reports. */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  16: 'BADVERS',
};

/** `NOERROR`, `NXDOMAIN`, ...; `RCODE23` for a code without a name. */
export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** Record types by number, with the mnemonics the policy's `dns.types` uses. */
export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  NULL: 10,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  OPT: 41,
  DS: 43,
  DNSKEY: 48,
  TLSA: 52,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
  CAA: 257,
} as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([name, code]) => [code, name]));

/** `A`, `HTTPS`, ...; `TYPE123` (RFC 3597) for a type without a mnemonic. */
export function typeName(code: number): string {
  return TYPE_NAMES.get(code) ?? `TYPE${code}`;
}

/** Class `IN`; `CH`, `HS`, `ANY` and numbers for the rest, as reported in events. */
export function className(code: number): string {
  return code === 1 ? 'IN' : code === 3 ? 'CH' : code === 4 ? 'HS' : code === 255 ? 'ANY' : `CLASS${code}`;
}

/** Header flag bits (RFC 1035 4.1.1, RFC 4035). */
export const FLAG = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

/** UDP payload the guard advertises and asks for (DNS flag day 2020: no IP fragmentation). */
export const EDNS_UDP_PAYLOAD = 1232;
/** Largest answer over UDP to a client that sent no EDNS (RFC 1035). */
export const CLASSIC_UDP_PAYLOAD = 512;

/** An OPT record: root owner, type 41, payload size in the class, no options; DO bit as asked. */
export function optRecord(payload: number, dnssecOk: boolean, extendedRcode = 0): Buffer {
  const opt = Buffer.alloc(11);
  opt[0] = 0; // root
  opt.writeUInt16BE(TYPE.OPT, 1);
  opt.writeUInt16BE(payload, 3);
  opt[5] = extendedRcode;
  opt[6] = 0; // version 0
  opt.writeUInt16BE(dnssecOk ? 0x8000 : 0, 7);
  opt.writeUInt16BE(0, 9);
  return opt;
}

/** What a response header says besides its counts. */
export interface ResponseHeader {
  id: number;
  /** RD and CD copied from the query; RA, AD, TC as the guard decides. */
  flags: number;
  /** Low four bits; an extended code (BADVERS) goes in the OPT record. */
  rcode: number;
  questions: number;
  answers: number;
  authorities: number;
  additionals: number;
}

/** The 12 header bytes of a response. */
export function responseHeader(h: ResponseHeader): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(h.id, 0);
  out.writeUInt16BE((h.flags | FLAG.QR | (h.rcode & 0xf)) & 0xffff, 2);
  out.writeUInt16BE(h.questions, 4);
  out.writeUInt16BE(h.answers, 6);
  out.writeUInt16BE(h.authorities, 8);
  out.writeUInt16BE(h.additionals, 10);
  return out;
}
