import * as z from 'zod';
import { parseCidr } from './address/index.js';
import { parseDuration } from './duration.js';
import { compileHostPattern } from './host-pattern.js';
import { isReportUntil, REPORT_UNTIL_HINT } from './report-until.js';
import { DNS_QUERY_TYPES, HTTP_SCHEMES, SCHEMES, type Scheme } from './types.js';

/*
 * The zod schema of policy version 1 (shared/design/policy.md). Semantic checks (host patterns, CIDRs,
 * port ranges, rule consistency, unique names) live inside the schema as refinements, so that one pass
 * reports every problem at once, each with its path.
 */

const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${String(value)}" is not a duration`,
      params: { hint: 'write 250ms, 5s, 2m, 1h, or a number of milliseconds' },
    });
    return z.NEVER;
  }
  return ms;
});

const tlsVersion = z.enum(['TLSv1.2', 'TLSv1.3'], {
  error: () => ({ message: 'minVersion must be TLSv1.2 or TLSv1.3' }),
});
const mode = z.enum(['enforce', 'report'], { error: () => ({ message: 'mode must be enforce or report' }) });
const privateAddresses = z.enum(['deny', 'allow'], {
  error: () => ({ message: 'privateAddresses must be deny or allow' }),
});

const defaultsTls = z.strictObject({ minVersion: tlsVersion.optional() });
const ruleTls = z.strictObject({ minVersion: tlsVersion.optional(), verify: z.boolean().optional() });

const timeouts = z.strictObject({
  connect: duration.optional(),
  response: duration.optional(),
  idle: duration.optional(),
  total: duration.optional(),
});

const breakerSettings = z.strictObject({
  errorThresholdPercentage: z.number().min(1).max(100).optional(),
  volumeThreshold: z.number().int().min(1).optional(),
  resetTimeout: duration.optional(),
  rollingWindow: duration.optional(),
});
const breaker = z.union([z.literal(false), breakerSettings]);

const dnsType = z.enum(DNS_QUERY_TYPES, {
  error: (issue) => ({
    message: `"${String(issue.input)}" is not a DNS query type the edge forwards`,
    params: {
      hint: `one of ${DNS_QUERY_TYPES.join(', ')} (upper case); zone transfers (AXFR, IXFR) are never forwarded`,
    },
  }),
});
/** An allow rule's `dns` key: the query types its names may be asked for at the edge's DNS guard. */
const ruleDns = z.strictObject({ types: z.array(dnsType).min(1) });

const hostEntry = z.string().superRefine((value, ctx) => {
  const result = compileHostPattern(value);
  if (!result.ok) ctx.addIssue({ code: 'custom', message: result.message, params: { hint: result.hint } });
});

const cidrEntry = z.string().superRefine((value, ctx) => {
  try {
    parseCidr(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

const PORT_RANGE = /^(\d{1,5})-(\d{1,5})$/;
const portEntry = z.union([z.number(), z.string()]).superRefine((value, ctx) => {
  const bad = (message: string) =>
    ctx.addIssue({ code: 'custom', message, params: { hint: 'a port is 1-65535; a range is "8000-8099"' } });
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 65535) bad(`${value} is not a port`);
    return;
  }
  const m = PORT_RANGE.exec(value);
  if (!m) return bad(`"${value}" is not a port or a range`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) bad(`"${value}" is not a valid range`);
});

const METHOD = /^[A-Za-z]+$/;
const ruleName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a rule name is letters, digits, ".", "_" and "-"');

const ruleShape = {
  name: ruleName,
  hosts: z.array(hostEntry).optional(),
  addresses: z.array(cidrEntry).optional(),
  schemes: z
    .array(z.enum(SCHEMES, { error: () => ({ message: `a scheme is one of ${SCHEMES.join(', ')}` }) }))
    .min(1)
    .optional(),
  ports: z.array(portEntry).min(1).optional(),
  methods: z.array(z.string().regex(METHOD, 'a method is a word such as GET')).min(1).optional(),
  paths: z.array(z.string().startsWith('/', 'a path pattern starts with /')).min(1).optional(),
};

interface RuleLike {
  name: string;
  hosts?: string[] | undefined;
  addresses?: string[] | undefined;
  schemes?: Scheme[] | undefined;
  ports?: unknown[] | undefined;
  methods?: string[] | undefined;
  paths?: string[] | undefined;
}

function checkRule(kind: 'allow' | 'deny') {
  return (r: RuleLike, ctx: z.RefinementCtx) => {
    if (!r.hosts?.length && !r.addresses?.length) {
      ctx.addIssue({
        code: 'custom',
        message: `rule "${r.name}" lists neither hosts nor addresses`,
        params: { hint: 'add hosts: [api.example.com] or addresses: [203.0.113.10/32]' },
      });
    }
    const schemes: readonly Scheme[] = r.schemes ?? (kind === 'allow' ? ['https'] : SCHEMES);
    if (kind === 'allow' && schemes.includes('tcp') && !r.ports) {
      ctx.addIssue({
        code: 'custom',
        path: ['schemes'],
        message: `rule "${r.name}" allows tcp, which has no default port`,
        params: { hint: 'list the ports: ports: [5432]' },
      });
    }
    if ((r.methods || r.paths) && !schemes.some((s) => HTTP_SCHEMES.has(s))) {
      ctx.addIssue({
        code: 'custom',
        path: [r.methods ? 'methods' : 'paths'],
        message: `rule "${r.name}": methods and paths apply to HTTP schemes only`,
        params: { hint: 'add https/http to schemes, or remove methods and paths' },
      });
    }
  };
}

const allowRule = z
  .strictObject({
    ...ruleShape,
    tls: ruleTls.optional(),
    timeouts: timeouts.optional(),
    breaker: breaker.optional(),
    privateAddresses: privateAddresses.optional(),
    dns: ruleDns.optional(),
  })
  .superRefine(checkRule('allow'));
const denyRule = z.strictObject(ruleShape).superRefine(checkRule('deny'));

const allowRules = z.array(allowRule);
const denyRules = z.array(denyRule);

const reportUntil = z.string().superRefine((value, ctx) => {
  if (!isReportUntil(value)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not a date`,
      params: { hint: REPORT_UNTIL_HINT },
    });
  }
});

const service = z.strictObject({
  sources: z.array(cidrEntry).optional(),
  mode: mode.optional(),
  reportUntil: reportUntil.optional(),
  allow: allowRules.optional(),
  deny: denyRules.optional(),
});

/** The zod schema of a version 1 policy document, before normalisation. */
export const policySchema = z
  .strictObject({
    version: z.literal(1, { error: () => ({ message: 'version must be 1' }) }),
    mode: mode.optional(),
    reportUntil: reportUntil.optional(),
    defaults: z
      .strictObject({
        tls: defaultsTls.optional(),
        timeouts: timeouts.optional(),
        breaker: breaker.optional(),
        privateAddresses: privateAddresses.optional(),
      })
      .optional(),
    allow: allowRules.optional(),
    deny: denyRules.optional(),
    services: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/), service).optional(),
  })
  .superRefine((policy, ctx) => {
    // Rule names must be unique across the file: every decision and event names its rule.
    const seen = new Map<string, string>();
    const visit = (rules: { name: string }[] | undefined, where: (string | number)[]) => {
      rules?.forEach((r, i) => {
        const prior = seen.get(r.name);
        if (prior) {
          ctx.addIssue({
            code: 'custom',
            path: [...where, i, 'name'],
            message: `rule name "${r.name}" is already used at ${prior}`,
            params: { hint: 'every rule needs its own name: decisions and events report it' },
          });
        } else seen.set(r.name, [...where, i].join('.'));
      });
    };
    visit(policy.allow, ['allow']);
    visit(policy.deny, ['deny']);
    for (const [name, svc] of Object.entries(policy.services ?? {})) {
      visit(svc.allow, ['services', name, 'allow']);
      visit(svc.deny, ['services', name, 'deny']);
    }
  });

/** A policy document as written, after schema validation (durations already in milliseconds). */
export type PolicyDocument = z.output<typeof policySchema>;
export type AllowRuleDocument = NonNullable<PolicyDocument['allow']>[number];
export type DenyRuleDocument = NonNullable<PolicyDocument['deny']>[number];

/** Known keys per object kind, for "did you mean" hints on unknown keys. */
export const KNOWN_KEYS = {
  policy: ['version', 'mode', 'reportUntil', 'defaults', 'allow', 'deny', 'services'],
  defaults: ['tls', 'timeouts', 'breaker', 'privateAddresses'],
  allow: [
    'name',
    'hosts',
    'addresses',
    'schemes',
    'ports',
    'methods',
    'paths',
    'tls',
    'timeouts',
    'breaker',
    'privateAddresses',
    'dns',
  ],
  deny: ['name', 'hosts', 'addresses', 'schemes', 'ports', 'methods', 'paths'],
  tls: ['minVersion', 'verify'],
  timeouts: ['connect', 'response', 'idle', 'total'],
  breaker: ['errorThresholdPercentage', 'volumeThreshold', 'resetTimeout', 'rollingWindow'],
  service: ['sources', 'mode', 'reportUntil', 'allow', 'deny'],
  dns: ['types'],
} as const;
