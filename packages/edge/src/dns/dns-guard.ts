/**
 * The DNS guard: one message in, at most one message out, whatever the transport. A question is decided
 * by the policy (`decideDnsQuestion`: the name for the querying service, and the query type); a refused
 * one is answered here and never reaches the upstream; an allowed one is asked upstream as a query the
 * guard builds, and the answer is filtered (CNAME chain, `ech` removed) and its addresses decided like
 * dialled addresses (`decideDnsAnswerAddress`) before the client sees it. One event per question.
 */
import {
  type Decision,
  type DnsEvent,
  decideDnsAnswerAddress,
  decideDnsQuestion,
  type EventEmitter,
  type Policy,
  refineDecision,
} from '@egress-guard/policy';
import { canonicalAddress } from '../claims.js';
import { encodeRecords, type FilteredAnswer, filterAnswer } from './answer.js';
import type { DnsBindings } from './bindings.js';
import { type DnsMetrics, typeLabel } from './dns-metrics.js';
import type { ExfiltrationSignals, ExfiltrationTracker } from './exfiltration.js';
import { type DnsQuery, readQuery } from './query.js';
import type { SourceRateLimiter } from './rate-limit.js';
import type { UpstreamClient, UpstreamServer } from './upstream.js';
import {
  CLASSIC_UDP_PAYLOAD,
  className,
  EDNS_UDP_PAYLOAD,
  FLAG,
  optRecord,
  RCODE,
  rcodeName,
  responseHeader,
  typeName,
} from './wire.js';

/** How a refused question is answered: `REFUSED` (default) or `NXDOMAIN`. */
export type DnsRefusal = 'refused' | 'nxdomain';

/** What the guard works with; the edge server provides it. */
export interface DnsGuardContext {
  /** The policy in force (read for every question, so a reload applies at once). */
  policy(): Policy;
  events: EventEmitter;
  metrics: DnsMetrics;
  bindings: DnsBindings;
  exfiltration: ExfiltrationTracker;
  rateLimiter: SourceRateLimiter;
  /** The edge's resolvers (time limit included: then SERVFAIL). */
  upstream: UpstreamClient;
  /** For messages: the resolvers asked, and the time limit. */
  servers: readonly UpstreamServer[];
  timeoutMs: number;
  refusal: DnsRefusal;
  /** A new event id. */
  nextId(): string;
}

/** Signals at or above these count as a tunnel-like name in the exfiltration metric. */
const LONG_LABEL = 40;
const HIGH_ENTROPY = 3.5;
const HIGH_ENTROPY_MIN_LENGTH = 16;
const MANY_NAMES = 50;

/** Answers DNS messages for one edge. */
export class DnsGuard {
  constructor(private readonly ctx: DnsGuardContext) {}

  /**
   * Answers one message from `source` (an IP address); undefined when it gets no answer (rate-limited,
   * unreadable, a response). Never throws.
   */
  async answer(message: Buffer, source: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const started = performance.now();
    const { metrics } = this.ctx;
    const client = canonicalAddress(source) ?? source;
    if (!this.ctx.rateLimiter.take(client)) {
      metrics.dropped.inc({ why: 'rate_limited', transport });
      return undefined;
    }
    const query = readQuery(message);
    if ('kind' in query) {
      if (query.kind === 'drop') {
        metrics.malformed.inc({ answer: 'none', transport });
        return undefined;
      }
      metrics.malformed.inc({ answer: query.badVersion ? 'BADVERS' : rcodeName(query.rcode), transport });
      const questions = query.questionBytes ? [query.questionBytes] : [];
      const header = responseHeader({
        id: query.id,
        flags: query.flags,
        rcode: query.rcode,
        questions: questions.length,
        answers: 0,
        authorities: 0,
        additionals: query.badVersion ? 1 : 0,
      });
      // BADVERS (16) is an extended code: its upper bits go in the OPT record (RFC 6891 6.1.3).
      const opt = query.badVersion ? [optRecord(EDNS_UDP_PAYLOAD, false, 1)] : [];
      return Buffer.concat([header, ...questions, ...opt]);
    }

    const policy = this.ctx.policy();
    const service = policy.serviceForAddress(client);
    const type = typeName(query.qtype);
    const question = decideDnsQuestion(
      policy,
      { name: query.name, type, class: className(query.qclass), service },
      Date.now(),
    );
    const limit = transport === 'tcp' ? 65_535 : udpLimit(query);
    let decision = question;
    let filtered: FilteredAnswer | undefined;
    let response: Buffer;
    if (!question.allowed) {
      response = this.refusal(query);
    } else {
      const upstream = await this.ctx.upstream.ask({
        labels: query.labels,
        qtype: query.qtype,
        qclass: query.qclass,
        checkingDisabled: (query.flags & FLAG.CD) !== 0,
        dnssecOk: query.edns?.dnssecOk ?? false,
      });
      filtered = upstream ? filterAnswer(upstream.message, query.name, query.qtype) : undefined;
      if (!filtered) {
        decision = refineDecision(
          question,
          'upstream_unreachable',
          upstream
            ? 'the resolver answered with a message the guard could not read; answered SERVFAIL'
            : `no resolver answered within ${this.ctx.timeoutMs} ms (${this.ctx.servers.map((s) => `${s.host}:${s.port}`).join(', ') || 'none configured'}); answered SERVFAIL`,
          true,
        );
        response = this.error(query, RCODE.SERVFAIL);
      } else {
        decision = this.checkAddresses(policy, question, filtered);
        if (!decision.allowed) {
          filtered = undefined;
          response = this.refusal(query);
        } else {
          this.bind(filtered);
          response = this.forward(query, filtered, limit);
        }
      }
    }

    const rcode = response.readUInt16BE(2) & 0xf;
    const answerCount = response.readUInt16BE(6);
    // A refused answer counts too (its name was allowed but its addresses were not); SERVFAIL does not.
    const refused =
      question.result !== 'allowed' ||
      decision.reason === 'private_address' ||
      decision.reason === 'explicit_deny';
    const signals = refused ? this.ctx.exfiltration.observe(query.name) : undefined;
    if (signals) this.countSignals(signals);
    metrics.questions.inc({
      result: decision.result,
      reason: decision.reason,
      rcode: rcodeName(rcode),
      type: typeLabel(type),
      transport,
    });
    this.emit(decision, query, type, rcode, answerCount, filtered, signals, client, transport, started);
    return response;
  }

  /** The answer's addresses against the rule that allowed the name: the first refused one decides. */
  private checkAddresses(policy: Policy, question: Decision, answer: FilteredAnswer): Decision {
    for (const { address } of answer.addresses) {
      const d = decideDnsAnswerAddress(policy, question, address);
      if (d.result !== 'allowed') return d;
    }
    return question;
  }

  private bind(answer: FilteredAnswer): void {
    for (const { address, ttl } of answer.addresses) {
      const canonical = canonicalAddress(address);
      if (canonical === undefined) continue;
      // Every name of the chain: the client may claim any of them (the SNI is usually the first).
      for (const name of answer.chain) this.ctx.bindings.bind(name, canonical, ttl);
    }
    this.ctx.metrics.bindings.set(this.ctx.bindings.size);
  }

  private refusal(query: DnsQuery): Buffer {
    return this.error(query, this.ctx.refusal === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.REFUSED);
  }

  /** Header and question echoed, no records (an OPT when the client sent one). */
  private error(query: DnsQuery, rcode: number, extraFlags = 0): Buffer {
    const opt = query.edns ? [optRecord(EDNS_UDP_PAYLOAD, query.edns.dnssecOk)] : [];
    const header = responseHeader({
      id: query.id,
      flags: query.flags | FLAG.RA | extraFlags,
      rcode,
      questions: 1,
      answers: 0,
      authorities: 0,
      additionals: opt.length,
    });
    return Buffer.concat([header, query.questionBytes, ...opt]);
  }

  /** The filtered answer, or a truncated (TC) reply when it does not fit the client's UDP limit. */
  private forward(query: DnsQuery, answer: FilteredAnswer, limit: number): Buffer {
    const answers = encodeRecords(answer.answers);
    const authorities = encodeRecords(answer.authorities);
    if (!answers || !authorities) return this.error(query, RCODE.SERVFAIL);
    const dnssecOk = query.edns?.dnssecOk ?? false;
    const opt = query.edns ? [optRecord(EDNS_UDP_PAYLOAD, dnssecOk)] : [];
    // AD only to a client that asked for DNSSEC: others cannot check what it vouches for.
    const flags = query.flags | FLAG.RA | (dnssecOk ? answer.flags & FLAG.AD : 0);
    const header = responseHeader({
      id: query.id,
      flags,
      rcode: answer.rcode,
      questions: 1,
      answers: answer.answers.length,
      authorities: answer.authorities.length,
      additionals: opt.length,
    });
    const full = Buffer.concat([header, query.questionBytes, answers, authorities, ...opt]);
    if (full.length <= limit) return full;
    return this.error(query, answer.rcode, FLAG.TC);
  }

  private countSignals(s: ExfiltrationSignals): void {
    if (s.labelMaxLength >= LONG_LABEL) this.ctx.metrics.exfiltration.inc({ signal: 'long_label' });
    if (s.entropy > HIGH_ENTROPY && s.labelMaxLength >= HIGH_ENTROPY_MIN_LENGTH)
      this.ctx.metrics.exfiltration.inc({ signal: 'high_entropy' });
    if (s.parentDistinctNames >= MANY_NAMES) this.ctx.metrics.exfiltration.inc({ signal: 'many_names' });
  }

  private emit(
    d: Decision,
    query: DnsQuery,
    type: string,
    rcode: number,
    answerCount: number,
    answer: FilteredAnswer | undefined,
    signals: ExfiltrationSignals | undefined,
    client: string,
    transport: 'udp' | 'tcp',
    started: number,
  ): void {
    const event: DnsEvent = {
      'event.name': 'egress.dns',
      'egress.schema': 1,
      'egress.source': 'edge',
      'service.name': d.service,
      'egress.id': this.ctx.nextId(),
      'egress.decision': d.result,
      'egress.reason': d.reason,
      'egress.rule': d.rule,
      'egress.mode': d.mode,
      'egress.policy.hash': d.policyHash,
      'egress.hook': 'edge.dns',
      'egress.message': d.result === 'allowed' ? undefined : d.message,
      'dns.question.name': query.name,
      'egress.dns.type': type,
      'egress.dns.rcode': rcodeName(rcode),
      'egress.dns.answer_count': answerCount,
      'dns.answers':
        answer && answer.addresses.length > 0
          ? [...new Set(answer.addresses.map((a) => a.address))]
          : undefined,
      'network.transport': transport,
      'client.address': client,
      'egress.duration_ms': Math.round((performance.now() - started) * 1000) / 1000,
      'egress.dns.label_max_length': signals?.labelMaxLength,
      'egress.dns.entropy': signals?.entropy,
      'egress.dns.parent': signals?.parent,
      'egress.dns.parent_distinct_names': signals?.parentDistinctNames,
    };
    this.ctx.events.emit(event);
  }
}

/** The largest UDP answer this client takes: its EDNS size (at most 1232), else 512. */
function udpLimit(query: DnsQuery): number {
  if (!query.edns) return CLASSIC_UDP_PAYLOAD;
  return Math.min(Math.max(query.edns.payload, CLASSIC_UDP_PAYLOAD), EDNS_UDP_PAYLOAD);
}
