/**
 * Reads the edge's config file (the settings of `egress-guard edge --config FILE`) with the `yaml`
 * library: full YAML 1.2 and JSON, one document, keys unique. Every syntax problem is reported at once
 * with its line and column, and the parsed document keeps its source map so that later problems (unknown
 * keys, bad values) can point at their place too. The policy file itself is read by `@egress-guard/policy`,
 * not here.
 */
import { formatProblem, positionOf, type SourcePosition } from '@egress-guard/policy';

export type { SourcePosition };

import { LineCounter, parseDocument } from 'yaml';

/** One problem in a config file, with its place. Formatted like a policy problem (`file:line:column path: message (hint)`). */
export interface ConfigProblem {
  /** Path inside the document (`limits.helloTimeout`, `explicit[1]`); empty for syntax problems. */
  path: string;
  message: string;
  hint?: string | undefined;
  file: string;
  /** 1-based line; 0 when the place is unknown. */
  line: number;
  /** 1-based column; 0 when the place is unknown. */
  column: number;
}

/**
 * Thrown for text that is not valid YAML or JSON (syntax errors, duplicate keys, several documents).
 * `problems` lists every one; `line` and `column` are those of the first.
 */
export class ConfigFileError extends Error {
  /** Every syntax problem found, in source order. */
  readonly problems: readonly ConfigProblem[];
  /** 1-based line of the first problem. */
  readonly line: number;
  /** 1-based column of the first problem. */
  readonly column: number;

  constructor(
    readonly file: string,
    problems: readonly ConfigProblem[],
  ) {
    super(problems.map((p) => formatProblem(p)).join('\n'));
    this.name = 'ConfigFileError';
    this.problems = problems;
    this.line = problems[0]?.line ?? 0;
    this.column = problems[0]?.column ?? 0;
  }
}

/** A parsed config file: its data and where each of its values came from. */
export interface ConfigDocument {
  /** The file name used in problems. */
  file: string;
  /** The parsed data; `{}` for an empty document. */
  data: unknown;
  /**
   * Line and column of a path inside the document (keys and list indexes), or of its closest existing
   * parent so that every problem has a place. With `atKey`, the position of the last segment's key rather
   * than of its value (for unknown keys).
   */
  positionOf(path: readonly PropertyKey[], atKey?: boolean): SourcePosition;
}

/**
 * Parses a config file's text (YAML or JSON) and keeps its source positions.
 *
 * @param text The file's contents.
 * @param file The name used in problems. Default `<config>`.
 * @throws {@link ConfigFileError} listing every syntax problem with its line and column.
 */
export function readConfigDocument(text: string, file = '<config>'): ConfigDocument {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigFileError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
        return {
          path: '',
          message: e.message.split('\n')[0] ?? e.message,
          hint: e.code === 'DUPLICATE_KEY' ? 'each key may appear once' : 'check the YAML syntax',
          file,
          line: pos.line,
          column: pos.col,
        };
      }),
    );
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  return {
    file,
    data: data ?? {},
    positionOf: (path, atKey = false) => positionOf(doc, lines, path, atKey),
  };
}

/**
 * Parses a config file's text: YAML (1.2, the whole language) or JSON, which is YAML too.
 *
 * @param text The file's contents.
 * @param file The name used in problems. Default `<config>`.
 * @returns The parsed data; `{}` for an empty document.
 * @throws {@link ConfigFileError} listing every syntax problem with its line and column.
 */
export function parseConfigText(text: string, file = '<config>'): unknown {
  return readConfigDocument(text, file).data;
}
