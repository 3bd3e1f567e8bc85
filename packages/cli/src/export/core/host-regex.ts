import type { HostMatch } from './host-match.js';

/**
 * Host patterns as anchored regular expressions in the subset shared by POSIX ERE (Squid's `*_regex` ACLs),
 * PCRE (nginx, HAProxy's `-m reg`) and RE2: groups `( )`, alternation, bracket classes, bounds; no `(?:`,
 * no look-around. Written in lower case: the engine must match case-insensitively (`~*`, `-i`). Each accepts
 * one trailing dot, as our normalisation does.
 *
 * Wildcard parts use the label characters [a-z0-9_-]; what makes such a name invalid for our decider (a
 * label over 63 octets or with a hyphen at either end, a name over 253 octets, an `xn--` label whose
 * punycode we cannot check in the engine) is refused by {@link WILDCARD_GUARDS}, which an ordered engine
 * places before its wildcard allows.
 */
export type HostRegexResult = { ok: true; regex: string } | { ok: false; reason: string; choices: string[] };

const LABEL_CHARS = '[a-z0-9_-]';

/** Escapes a normalised DNS name (letters, digits, `-`, `_`, dots). */
export function escapeHostName(name: string): string {
  return name.replace(/[.\\^$|?*+()[\]{}]/g, (c) => `\\${c}`);
}

/** The anchored regex of one host pattern. */
export function hostMatchRegex(match: HostMatch): HostRegexResult {
  switch (match.kind) {
    case 'exact':
      return { ok: true, regex: `^${escapeHostName(match.name)}\\.?$` };
    case 'multi-label':
      return { ok: true, regex: `^(${LABEL_CHARS}+\\.)+${escapeHostName(match.suffix)}\\.?$` };
    case 'one-label': {
      if (match.labelGlob === undefined) {
        return { ok: true, regex: `^${LABEL_CHARS}+\\.${escapeHostName(match.suffix)}\\.?$` };
      }
      const label = labelGlobRegex(match.labelGlob, match.text);
      if (!label.ok) return label;
      return { ok: true, regex: `^${label.regex}\\.${escapeHostName(match.suffix)}\\.?$` };
    }
  }
}

/**
 * A glob within one label: literal label characters, `*` (any run, possibly empty) and `?` (one character).
 * Brackets and braces are minimatch features left untranslated: a mistake there would widen the rule.
 */
function labelGlobRegex(glob: string, text: string): HostRegexResult {
  if (!/^[a-z0-9_*?-]+$/.test(glob)) {
    return {
      ok: false,
      reason: `"${text}": the label glob "${glob}" uses brackets or braces, which export does not translate`,
      choices: [`list the names "${glob}" stands for`, 'use *.suffix (any one label) if that is acceptable'],
    };
  }
  let regex = '';
  for (const c of glob) regex += c === '*' ? `${LABEL_CHARS}*` : c === '?' ? LABEL_CHARS : c;
  return { ok: true, regex };
}

/** Any port, or none: the port part of a deny (denying more is the safe side). */
export const ANY_PORT_REGEX = '(:[0-9]+)?';

/**
 * A host regex for a plain request's `Host` (or `:authority`), which may carry a port: `portRegex` goes before
 * the final `$` (`(:[0-9]+)?` for any port or none, `:8080` for that port only). Regexes not anchored at the
 * end (the wildcard guards) are returned as they are: seeing the port can only make them refuse more.
 */
export function withHostPortRegex(regex: string, portRegex: string): string {
  return regex.endsWith('$') ? `${regex.slice(0, -1)}${portRegex}$` : regex;
}

/** A named refusal an ordered engine evaluates before its wildcard allows (see {@link hostMatchRegex}). */
export interface WildcardGuard {
  name: string;
  regex: string;
  why: string;
}

/** Names a wildcard regex would accept but our decider refuses or cannot vouch for. */
export const WILDCARD_GUARDS: readonly WildcardGuard[] = [
  {
    name: 'name-too-long',
    regex: '^(.{254}.|.{253}[^.])',
    why: 'a name over 253 octets is not a DNS name (policy: denied as invalid)',
  },
  {
    name: 'label-too-long',
    regex: '[^.]{64}',
    why: 'a label over 63 octets is not a DNS label (policy: denied as invalid)',
  },
  {
    name: 'label-hyphen-edge',
    regex: '(^|\\.)-|-(\\.|$)',
    why: 'a label starting or ending with "-" is not a DNS label (policy: denied as invalid)',
  },
  {
    name: 'idn-under-wildcard',
    regex: '(^|\\.)xn--',
    why: 'the engine cannot check punycode, so IDN (xn--) names under a wildcard are refused (narrower: list them exactly)',
  },
];
