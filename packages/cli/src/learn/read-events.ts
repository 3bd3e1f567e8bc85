import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { REASON_CODES, type ReasonCode, SCHEMES, type Scheme } from '@egress-guard/policy';
import { UsageError } from '../io.js';

/**
 * One decision event read back from an audit log (SDK or edge), reduced to what the tools use; or an
 * `egress.summary` (summary mode), read as `count` allowed decisions of one destination, with no
 * method or path.
 */
export interface LoggedDecision {
  /** Epoch milliseconds of the line, when it has a time. */
  time: number | undefined;
  source: 'sdk' | 'edge';
  service: string | undefined;
  id: string;
  result: 'allowed' | 'denied' | 'reported';
  reason: ReasonCode;
  rule: string | undefined;
  mode: 'enforce' | 'report';
  policyHash: string;
  hook: string;
  scheme: Scheme;
  host: string | undefined;
  address: string | undefined;
  port: number;
  method: string | undefined;
  path: string | undefined;
  /** The client address at the edge. */
  client: string | undefined;
  /** How many decisions this stands for: 1, or a summary's `egress.summary.count`. */
  count: number;
  /** Read from an `egress.summary`: allowed traffic whose methods and paths are not known. */
  summary: boolean;
  /** An edge DNS guard question (`egress.dns`): its query type (`A`, `TXT`, ...). */
  dnsType?: string | undefined;
  /** An edge DNS guard question: the addresses its answer carried. */
  answers?: string[] | undefined;
}

/** Whether a decision is about a DNS look-up of a name (SDK `dns` hook, edge DNS guard), not a connection. */
export function isLookup(d: Pick<LoggedDecision, 'hook'>): boolean {
  return d.hook === 'dns' || d.hook === 'edge.dns';
}

/** What reading the logs found. */
export interface ReadResult {
  decisions: LoggedDecision[];
  /** Lines that were events of other kinds (completions, policy, breaker, dropped, workers). */
  otherEvents: number;
  /** `egress.summary` lines, read into `decisions` (each standing for its count). */
  summaries: number;
  /** Lines that were not egress-guard events at all (application logs, garbage), skipped. */
  skippedLines: number;
  files: string[];
}

const RESULTS = new Set(['allowed', 'denied', 'reported']);
const REASONS = new Set<string>(REASON_CODES);
const SCHEME_SET = new Set<string>(SCHEMES);
// A line longer than this is not one of ours (events are well under 4 KiB); skip it unparsed.
const MAX_LINE = 64 * 1024;

/**
 * Reads audit logs: JSON lines in egress-guard's schema, from files or `-` (stdin). Lines that are not
 * events are counted and skipped, so a log that mixes application lines, or a syslog line with a header
 * before the JSON, reads fine.
 */
export async function readDecisions(files: string[]): Promise<ReadResult> {
  if (files.length === 0) throw new UsageError('give at least one log file (or - for stdin)');
  const out: ReadResult = { decisions: [], otherEvents: 0, summaries: 0, skippedLines: 0, files };
  for (const file of files) {
    const input = file === '-' ? process.stdin : createReadStream(file, 'utf8');
    const opened = new Promise<void>((resolve, reject) => {
      if (file === '-') return resolve();
      input.once('open', () => resolve());
      input.once('error', (error: NodeJS.ErrnoException) =>
        reject(new UsageError(`${file}: ${error.code === 'ENOENT' ? 'file not found' : error.message}`)),
      );
    });
    await opened;
    const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of lines) {
      const event = parseLine(line);
      if (!event) {
        if (line.trim() !== '') out.skippedLines++;
        continue;
      }
      const decision = toDecision(event) ?? fromSummary(event) ?? fromDnsQuestion(event);
      if (decision) {
        out.decisions.push(decision);
        if (decision.summary) out.summaries++;
      } else out.otherEvents++;
    }
  }
  return out;
}

/** The event object of a line, if the line holds one (possibly after a syslog or container prefix). */
export function parseLine(line: string): Record<string, unknown> | undefined {
  if (line.length > MAX_LINE) return undefined;
  const start = line.indexOf('{');
  if (start === -1) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line.slice(start));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  // Through an application logger that nests OCSF, or any wrapper: egress-guard's own fields are on top.
  if (typeof record['event.name'] !== 'string' || !String(record['event.name']).startsWith('egress.')) {
    return undefined;
  }
  return record;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A decision event, checked field by field; undefined for other events or malformed ones. */
export function toDecision(e: Record<string, unknown>): LoggedDecision | undefined {
  if (e['event.name'] !== 'egress.decision') return undefined;
  const result = e['egress.decision'];
  const reason = e['egress.reason'];
  const scheme = e['url.scheme'];
  const port = e['server.port'];
  if (typeof result !== 'string' || !RESULTS.has(result)) return undefined;
  if (typeof reason !== 'string' || !REASONS.has(reason)) return undefined;
  if (typeof scheme !== 'string' || !SCHEME_SET.has(scheme)) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return {
    time: timeOf(e.time),
    source: e['egress.source'] === 'edge' ? 'edge' : 'sdk',
    ...decided(e, result, reason),
    hook: str(e['egress.hook']) ?? '',
    scheme: scheme as Scheme,
    host: str(e['server.address']),
    address: str(e['network.peer.address']),
    port,
    method: str(e['http.request.method'])?.toUpperCase(),
    path: str(e['url.path']),
    client: str(e['client.address']),
    count: 1,
    summary: false,
  };
}

/** The fields every decided event (a decision, a DNS question) carries, once result and reason are checked. */
function decided(e: Record<string, unknown>, result: string, reason: string) {
  return {
    service: str(e['service.name']),
    id: str(e['egress.id']) ?? '',
    result: result as LoggedDecision['result'],
    reason: reason as ReasonCode,
    rule: str(e['egress.rule']),
    mode: e['egress.mode'] === 'report' ? ('report' as const) : ('enforce' as const),
    policyHash: str(e['egress.policy.hash']) ?? '',
  };
}

function timeOf(v: unknown): number | undefined {
  return typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) || undefined : undefined;
}

/**
 * An `egress.summary` (summary mode) as the allowed decisions it counts: the policy in force allowed
 * `egress.summary.count` requests to its origin by its rule, from the start of its interval. It says
 * nothing of methods or paths. Undefined for other events or malformed summaries.
 */
export function fromSummary(e: Record<string, unknown>): LoggedDecision | undefined {
  if (e['event.name'] !== 'egress.summary') return undefined;
  const scheme = e['url.scheme'];
  const port = e['server.port'];
  const count = e['egress.summary.count'];
  if (typeof scheme !== 'string' || !SCHEME_SET.has(scheme)) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) return undefined;
  const host = str(e['server.address']);
  if (!host) return undefined;
  return {
    time: timeOf(e['egress.summary.start']) ?? timeOf(e.time),
    source: e['egress.source'] === 'edge' ? 'edge' : 'sdk',
    service: str(e['service.name']),
    id: '',
    result: 'allowed',
    reason: 'allowed',
    rule: str(e['egress.rule']),
    mode: 'enforce',
    policyHash: str(e['egress.policy.hash']) ?? '',
    hook: 'summary',
    scheme: scheme as Scheme,
    host,
    address: undefined,
    port,
    method: undefined,
    path: undefined,
    client: undefined,
    count,
    summary: true,
  };
}

/**
 * An edge DNS guard question (`egress.dns`) as the decision about a look-up it is: the name asked, for
 * the client's service, with its query type and the addresses answered. Undefined for other events or
 * malformed ones.
 */
export function fromDnsQuestion(e: Record<string, unknown>): LoggedDecision | undefined {
  if (e['event.name'] !== 'egress.dns') return undefined;
  const result = e['egress.decision'];
  const reason = e['egress.reason'];
  const name = str(e['dns.question.name']);
  const type = str(e['egress.dns.type']);
  if (typeof result !== 'string' || !RESULTS.has(result)) return undefined;
  if (typeof reason !== 'string' || !REASONS.has(reason)) return undefined;
  if (!name || !type) return undefined;
  const answers = Array.isArray(e['dns.answers'])
    ? e['dns.answers'].filter((a): a is string => typeof a === 'string')
    : undefined;
  return {
    time: timeOf(e.time),
    source: 'edge',
    ...decided(e, result, reason),
    hook: 'edge.dns',
    scheme: 'tcp',
    host: name,
    address: undefined,
    port: 53,
    method: undefined,
    path: undefined,
    client: str(e['client.address']),
    count: 1,
    summary: false,
    dnsType: type.toUpperCase(),
    answers: answers && answers.length > 0 ? answers : undefined,
  };
}
