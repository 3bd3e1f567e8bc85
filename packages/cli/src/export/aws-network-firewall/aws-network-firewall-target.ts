import {
  ANY_PORT_REGEX,
  type ExportPlan,
  type ExportRule,
  type ExportTarget,
  headerComment,
  type MatchEntry,
  type RenderOptions,
  withHostPortRegex,
} from '../core/index.js';

/** Our rules' sids start here (1,000,000-1,999,999 is the range Suricata leaves to local rules). */
const FIRST_SID = 1_000_001;

/**
 * AWS Network Firewall: the Suricata-compatible rules string of one stateful rule group, meant for strict
 * rule order. Per TLS port the core's ordered entries become, in order: `drop` for deny rules, `pass` for
 * exact allows, `drop` for the wildcard guards, `pass` for wildcard allows, all on the `tls.sni` buffer, then
 * a closing `drop` for any other server name on that port. Plain HTTP does the same on `http.host`. Deny
 * rules' addresses become `drop ip` rules first (the firewall sees the address a client dials).
 *
 * Each match is a `content` on the pattern's literal part (a fast pre-filter the regex implies) and an
 * anchored, case-insensitive `pcre` with the core's exact regex. Report mode: every `drop` becomes `alert`
 * (Suricata's alert action logs and lets the flow go on), the rule group's alert mode.
 *
 * A passive firewall: the flow goes to the address the client chose, whatever name it presents (destination
 * `client-address`: weaker `destination-binding`).
 */
export const awsNetworkFirewallTarget: ExportTarget = {
  name: 'aws-network-firewall',
  summary: 'AWS Network Firewall stateful rules (Suricata, strict order): tls.sni and http.host, pass/drop',
  semantics: {
    hostMatching: 'ordered-regex',
    constructs: { oneLabel: true, labelGlob: true, multiLabel: true },
    denyPrecedence: true,
    transports: ['tls', 'http'],
    enforces: ['addresses', 'report-mode'],
    // A passive firewall: the flow goes to the address the client chose, whatever name it presents.
    destination: { exact: 'client-address', wildcard: 'client-address' },
    // Ordered: the core's wildcard guards (pcre) refuse invalid names before the wildcard allows.
    wildcardsRefuseInvalidNames: true,
    auditMode: true,
  },
  render: renderAwsNetworkFirewall,
};

function renderAwsNetworkFirewall(plan: ExportPlan, options: RenderOptions): string {
  const report = plan.mode === 'report';
  const drop = report ? 'alert' : 'drop';
  let sid = FIRST_SID;
  const rule = (action: string, protocol: string, dest: string, port: string, body: string[]): string =>
    `${action} ${protocol} $HOME_NET any -> ${dest} ${port} (${[...body, `sid:${sid++}`, 'rev:1'].join('; ')};)`;

  const out: string[] = [
    ...headerComment(plan, options, '#'),
    '#',
    '# Use: the rules string (RulesSource.RulesString) of a stateful rule group. The firewall policy must use',
    '# StatefulEngineOptions.RuleOrder STRICT_ORDER, and as stateful default actions',
    report
      ? '# aws:alert_established only (report mode: nothing is dropped, every would-deny is an alert).'
      : '# aws:drop_established and aws:alert_established: handshakes pass, an established flow no rule passes is dropped.',
    '# $HOME_NET: the sources this policy applies to (the rule variable of the rule group).',
  ];

  const denyAddresses = plan.rules.filter((r) => r.kind === 'deny' && r.addresses.length > 0);
  if (denyAddresses.length > 0) {
    out.push('', '# Deny rules on addresses: the address the client dials, whatever name it used.');
    for (const r of denyAddresses) {
      out.push(`# deny rule "${r.name}"`);
      out.push(
        rule(drop, 'ip', `[${r.addresses.join(',')}]`, suricataPorts(r), [
          `msg:${quote(`egress-guard deny rule "${r.name}": ${r.addresses.join(', ')}`)}`,
        ]),
      );
    }
  }

  for (const listener of plan.listeners) {
    const tls = listener.transport === 'tls';
    const protocol = tls ? 'tls' : 'http';
    const buffer = tls ? 'tls.sni' : 'http.host';
    const where = tls ? `TLS port ${listener.port} (server name)` : `plain HTTP port ${listener.port} (Host)`;
    out.push('', `# ${where}: rules ${listener.rules.map((r) => `"${r}"`).join(', ')}`);
    for (const entry of listener.entries) {
      const action = entry.action === 'allow' ? 'pass' : drop;
      const who =
        entry.rule === undefined ? `guard ${entry.pattern}` : `${entry.action} rule "${entry.rule}"`;
      out.push(`# ${who}: ${entry.comment}`);
      out.push(
        rule(action, protocol, '$EXTERNAL_NET', String(listener.port), [
          `msg:${quote(entry.rule === undefined ? `egress-guard ${who}` : `egress-guard ${who}: ${entry.pattern}`)}`,
          'flow:to_server,established',
          buffer,
          ...hostMatch(entry, tls),
        ]),
      );
    }
    out.push(`# no rule allows any other ${tls ? 'server name' : 'Host'} on this port`);
    out.push(
      rule(drop, protocol, '$EXTERNAL_NET', String(listener.port), [
        `msg:${quote(`egress-guard: ${where}, no allow rule matched`)}`,
        'flow:to_server,established',
      ]),
    );
  }
  return `${out.join('\n')}\n`;
}

/**
 * `content` on the literal part of the pattern (implied by the regex, so it only speeds matching up), then
 * the exact regex. `http.host` is lower case already (no `nocase`); a Host may carry a port.
 */
function hostMatch(entry: MatchEntry, tls: boolean): string[] {
  const literal = entry.rule === undefined ? undefined : literalPart(entry.pattern);
  const regex = tls ? entry.regex : withHostPortRegex(entry.regex, ANY_PORT_REGEX);
  return [
    ...(literal === undefined ? [] : [`content:${quote(literal)}`, ...(tls ? ['nocase'] : [])]),
    `pcre:"/${regex}/i"`,
  ];
}

/** `api.example.com` → itself; `*.example.com`, `api-*.example.com`, `**.example.com` → `.example.com`. */
function literalPart(pattern: string): string {
  const dot = pattern.indexOf('.');
  const first = dot < 0 ? pattern : pattern.slice(0, dot);
  return /[*?]/.test(first) ? pattern.slice(dot) : pattern;
}

function suricataPorts(rule: ExportRule): string {
  if (rule.ports === undefined) return 'any';
  const parts = rule.ports.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}:${hi}`));
  return parts.length === 1 ? parts[0]! : `[${parts.join(',')}]`;
}

/** A quoted option value: `"`, `;` and `\` escaped (Suricata rules/intro). */
function quote(text: string): string {
  return `"${text.replace(/[\\";]/g, (c) => `\\${c}`)}"`;
}
