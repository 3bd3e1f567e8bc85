import type { LearnedRule } from './learned-rule.js';

/** A learned service section. */
export interface LearnedService {
  name: string;
  /** Edge client addresses seen for the service, as /32 or /128 ranges. */
  sources: string[];
  sourcesNote: string | undefined;
  rules: LearnedRule[];
}

/** What the learned file holds. */
export interface LearnedPolicy {
  header: string[];
  mode: 'enforce' | 'report';
  reportUntil: string | undefined;
  allow: LearnedRule[];
  services: LearnedService[];
  /** Comment lines at the end: what was seen but not learned. */
  footer: string[];
}

const PLAIN = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** A YAML scalar: plain when it cannot be misread, else double-quoted (JSON strings are valid YAML). */
function scalar(value: string | number): string {
  if (typeof value === 'number') return String(value);
  // Plain only when YAML cannot read it as something else (a number, a boolean, null, a date).
  if (PLAIN.test(value) && !/^(\d|true$|false$|null$|yes$|no$|on$|off$|y$|n$|~$)/i.test(value)) return value;
  return JSON.stringify(value);
}

function list(values: readonly (string | number)[]): string {
  return `[${values.map(scalar).join(', ')}]`;
}

function comment(text: string, indent: string): string {
  // A comment never spans lines: a newline in logged data must not turn into YAML.
  return `${indent}# ${text.replace(/[\r\n]+/g, ' ')}`;
}

function rules(out: string[], rs: readonly LearnedRule[], indent: string): void {
  for (const r of rs) {
    for (const c of r.comments) out.push(comment(c, indent));
    out.push(`${indent}- name: ${scalar(r.name)}`);
    const field = (key: string, values: readonly (string | number)[] | undefined) => {
      if (values && values.length > 0) out.push(`${indent}  ${key}: ${list(values)}`);
    };
    field('hosts', r.hosts);
    field('addresses', r.addresses);
    field('schemes', r.schemes);
    field('ports', r.ports);
    field('methods', r.methods);
    field('paths', r.paths);
    if (r.privateAddresses) out.push(`${indent}  privateAddresses: allow`);
  }
}

/** Renders the learned policy as commented YAML that `egress-guard lint` accepts. */
export function renderPolicy(p: LearnedPolicy): string {
  const out: string[] = p.header.map((h) => comment(h, ''));
  out.push('version: 1', `mode: ${p.mode}`);
  if (p.reportUntil) out.push(`reportUntil: ${scalar(p.reportUntil)}`);
  if (p.allow.length > 0) {
    out.push('', 'allow:');
    rules(out, p.allow, '  ');
  }
  if (p.services.length > 0) {
    out.push('', 'services:');
    for (const s of p.services) {
      out.push(`  ${scalar(s.name)}:`);
      if (s.sourcesNote) out.push(comment(s.sourcesNote, '    '));
      if (s.sources.length > 0) out.push(`    sources: ${list(s.sources)}`);
      if (s.rules.length > 0) {
        out.push('    allow:');
        rules(out, s.rules, '      ');
      }
    }
  }
  if (p.footer.length > 0) out.push('', ...p.footer.map((f) => comment(f, '')));
  return `${out.join('\n')}\n`;
}
