import { createRequire } from 'node:module';
import { Minimatch } from 'minimatch';
import type { parse as tldtsParse } from 'tldts';
import { endsInNumber, parseIpLiteral } from './address/index.js';
import { normaliseHostName } from './host-name.js';

/** Tests one string: a compiled glob. */
export interface Matcher {
  test(value: string): boolean;
}

/**
 * A compiled host pattern. Wildcards may stand only in the leftmost label:
 * - `exact`: `api.example.com`
 * - `one-label`: `*.example.com` (exactly one label) or `api-*.example.com` (a glob within one label)
 * - `multi-label`: `**.example.com` (one or more labels)
 */
export type HostPattern =
  | { kind: 'exact'; name: string; text: string }
  | { kind: 'one-label'; suffix: string; label: Matcher | undefined; text: string }
  | { kind: 'multi-label'; suffix: string; text: string };

/** Result of compiling a pattern: the pattern, or why it is refused (with a hint). */
export type HostPatternResult =
  | { ok: true; pattern: HostPattern; warning?: string }
  | { ok: false; message: string; hint?: string };

const GLOB_CHARS = /[*?[\]{}]/;

let parse: typeof tldtsParse | undefined;

/**
 * tldts's `parse`, loaded with the first wildcard pattern: its public suffix list (loading it takes about
 * 15 ms and 6 MiB) is needed only to refuse patterns that are too broad, and a policy of exact names
 * never needs it.
 */
function parseDomain(...args: Parameters<typeof tldtsParse>): ReturnType<typeof tldtsParse> {
  parse ??= (
    createRequire(typeof __filename === 'string' ? __filename : import.meta.url)(
      'tldts',
    ) as typeof import('tldts')
  ).parse;
  return parse(...args);
}

/** Compiles one entry of a rule's `hosts`. */
export function compileHostPattern(text: string): HostPatternResult {
  const trimmed = text.endsWith('.') ? text.slice(0, -1) : text;
  const firstDot = trimmed.indexOf('.');
  const first = firstDot === -1 ? trimmed : trimmed.slice(0, firstDot);
  const rest = firstDot === -1 ? '' : trimmed.slice(firstDot + 1);

  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (parseIpLiteral(bare) || endsInNumber(bare) || bare.includes(':')) {
    // IP literals are matched by addresses rules only (policy.md): such a host entry could never match.
    const ip = parseIpLiteral(bare);
    return {
      ok: false,
      message: `"${text}" is an IP address, and hosts match names only`,
      hint: ip
        ? `list it under addresses: [${ip.canonical}/${ip.family === 4 ? 32 : 128}]`
        : 'list addresses under addresses, as CIDRs',
    };
  }
  if (!GLOB_CHARS.test(trimmed)) {
    const name = normaliseHostName(trimmed);
    if (name === undefined) return { ok: false, message: `"${text}" is not a valid DNS name` };
    return { ok: true, pattern: { kind: 'exact', name, text } };
  }
  if (GLOB_CHARS.test(rest)) {
    return {
      ok: false,
      message: `"${text}": wildcards may stand only in the leftmost label`,
      hint: 'list the names, or use **.suffix to match any depth',
    };
  }
  if (rest === '') {
    return { ok: false, message: `"${text}" matches every name`, hint: 'name the domain: *.example.com' };
  }
  const suffix = normaliseHostName(rest);
  if (suffix === undefined) return { ok: false, message: `"${text}": "${rest}" is not a valid DNS name` };

  const psl = parseDomain(suffix, { allowPrivateDomains: false });
  // A literal part that is itself a public suffix (ICANN section, or an unknown TLD) would let the
  // rule match any registrable domain under it: `*.com`, `**.co.uk`, `*.corp`.
  if (psl.publicSuffix === suffix || psl.domain === null) {
    return {
      ok: false,
      message: `"${text}" is too broad: "${suffix}" is a public suffix`,
      hint: `name a registrable domain under it, e.g. ${first}.example.${suffix}`,
    };
  }
  const priv = parseDomain(suffix, { allowPrivateDomains: true });
  const warning =
    priv.publicSuffix === suffix
      ? `"${text}": "${suffix}" is a private-section public suffix: any of its customers' names match`
      : undefined;

  if (first === '**') {
    return { ok: true, pattern: { kind: 'multi-label', suffix, text }, ...(warning ? { warning } : {}) };
  }
  if (first.includes('**')) {
    return {
      ok: false,
      message: `"${text}": ** must be the whole leftmost label`,
      hint: 'write **.example.com',
    };
  }
  if (first === '*') {
    return {
      ok: true,
      pattern: { kind: 'one-label', suffix, label: undefined, text },
      ...(warning ? { warning } : {}),
    };
  }
  const mm = new Minimatch(first.toLowerCase(), {
    dot: true,
    noglobstar: true,
    nocomment: true,
    nonegate: true,
  });
  const label: Matcher = { test: (s) => mm.match(s) };
  return { ok: true, pattern: { kind: 'one-label', suffix, label, text }, ...(warning ? { warning } : {}) };
}

/** Whether a normalised name matches a pattern (the decider uses its index; this is the reference). */
export function hostPatternMatches(pattern: HostPattern, name: string): boolean {
  switch (pattern.kind) {
    case 'exact':
      return name === pattern.name;
    case 'multi-label':
      return name.endsWith(`.${pattern.suffix}`) && name.length > pattern.suffix.length + 1;
    case 'one-label': {
      if (!name.endsWith(`.${pattern.suffix}`)) return false;
      const label = name.slice(0, name.length - pattern.suffix.length - 1);
      if (label.length === 0 || label.includes('.')) return false;
      return pattern.label === undefined || pattern.label.test(label);
    }
  }
}
