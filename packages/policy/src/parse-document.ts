import { LineCounter, parseDocument } from 'yaml';
import type { ZodError } from 'zod';
import { didYouMean } from './did-you-mean.js';
import { EgressPolicyError, type PolicyProblem } from './errors.js';
import { KNOWN_KEYS, type PolicyDocument, policySchema } from './schema.js';
import { positionOf } from './source-positions.js';

/**
 * Parses a YAML or JSON policy text and validates it. Throws EgressPolicyError listing every problem,
 * each with file, line, column and a hint.
 */
export function parsePolicyText(text: string, file?: string): PolicyDocument {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new EgressPolicyError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
        return {
          path: '',
          message: e.message.split('\n')[0] ?? e.message,
          hint: e.code === 'DUPLICATE_KEY' ? 'each key may appear once' : 'check the YAML syntax',
          file,
          line: pos?.line ?? 0,
          column: pos?.col ?? 0,
        };
      }),
      file,
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  if (data === null || data === undefined) {
    throw new EgressPolicyError(
      [{ path: '', message: 'the policy is empty', hint: 'start with version: 1', file, line: 1, column: 1 }],
      file,
    );
  }
  const result = policySchema.safeParse(data);
  if (result.success) return result.data;
  throw new EgressPolicyError(
    problemsOf(result.error, file, (path, atKey) => positionOf(doc, lines, path, atKey)),
    file,
  );
}

/** Validates a policy given as an object (no positions: line and column are 0). */
export function parsePolicyObject(data: unknown, file?: string): PolicyDocument {
  const result = policySchema.safeParse(data);
  if (result.success) return result.data;
  throw new EgressPolicyError(
    problemsOf(result.error, file, () => ({ line: 0, column: 0 })),
    file,
  );
}

type Locate = (path: readonly PropertyKey[], atKey: boolean) => { line: number; column: number };

function problemsOf(error: ZodError, file: string | undefined, locate: Locate): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        const hint = unknownKeyHint(issue.path, key);
        problems.push({
          path: formatPath(path),
          message: `unknown key "${key}"`,
          hint,
          file,
          ...locate(path, true),
        });
      }
      continue;
    }
    const params = (issue as { params?: { hint?: string } }).params;
    problems.push({
      path: formatPath(issue.path),
      message: issue.message,
      hint: params?.hint,
      file,
      ...locate(issue.path, false),
    });
  }
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

function unknownKeyHint(objectPath: readonly PropertyKey[], key: string): string | undefined {
  const kind = objectKind(objectPath);
  if (objectPath.at(-1) === 'tls' && objectPath[0] === 'defaults' && key === 'verify') {
    return 'tls.verify may be turned off only on a rule, never in defaults';
  }
  const known = KNOWN_KEYS[kind];
  const guess = didYouMean(key, known);
  return guess ? `did you mean "${guess}"?` : `known keys here: ${known.join(', ')}`;
}

function objectKind(path: readonly PropertyKey[]): keyof typeof KNOWN_KEYS {
  const last = path.at(-1);
  if (path.length === 0) return 'policy';
  if (typeof last === 'number') return path.at(-2) === 'deny' ? 'deny' : 'allow';
  if (last === 'defaults') return 'defaults';
  if (last === 'tls' || last === 'timeouts' || last === 'breaker' || last === 'dns') return last;
  if (path.length === 2 && path[0] === 'services') return 'service';
  return 'policy';
}

/** `allow[0].hosts[1]`, `services.payments.allow[2].name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}
