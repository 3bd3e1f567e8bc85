/**
 * Reads the edge's config file (the settings of `egress-guard edge --config FILE`) with the `yaml`
 * library: JSON, or the plain part of YAML that docs/edge.md describes (mappings, lists, one-line plain or
 * quoted values, comments), one document, keys unique. Anchors, aliases, tags and multi-line strings are
 * refused: a settings file read by people during an incident should mean what it shows, line by line.
 * Every problem is reported at once with its line and column, and the parsed document keeps its source
 * map so that later problems (unknown keys, bad values) can point at their place too. The policy file
 * itself is read by `@egress-guard/policy`, not here.
 */
import { readFileSync } from 'node:fs';
import { formatProblem, positionOf, type SourcePosition } from '@egress-guard/policy';
import { isAlias, isNode, isScalar, LineCounter, type Node, parseDocument, Scalar, visit } from 'yaml';
import { z } from 'zod';
import { formatOptionPath, type OptionProblem, optionProblemsOf } from './config.js';

export type { SourcePosition };

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
  const refused = refusedFeatures(doc.contents, text, lines, file);
  if (refused.length > 0) throw new ConfigFileError(file, refused);
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

/**
 * The YAML features docs/edge.md says the config file refuses: anchors, aliases, tags and strings that
 * span lines (block scalars `|` `>` and folded quoted or plain strings). Each with its place.
 */
function refusedFeatures(root: unknown, text: string, lines: LineCounter, file: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const refuse = (node: Node, message: string, hint: string, at = node.range?.[0] ?? 0) => {
    const { line, col } = lines.linePos(at);
    problems.push({ path: '', message, hint, file, line, column: col });
  };
  if (!isNode(root)) return problems;
  visit(root, {
    Node(_key, node) {
      if (isAlias(node)) {
        refuse(node, `alias *${node.source} is not accepted`, 'write the value out where it is used');
        return;
      }
      // A node's range starts at its value; its anchor and tag are written before it.
      const start = node.range?.[0] ?? 0;
      if (node.anchor) {
        const at = text.lastIndexOf(`&${node.anchor}`, start);
        refuse(node, `anchor &${node.anchor} is not accepted`, 'write the value out where it is used', at);
      }
      if (node.tag) {
        let at = text.lastIndexOf('!', start);
        while (at > 0 && text[at - 1] === '!') at--; // `!!str`
        const written = /^!\S*/.exec(text.slice(at))?.[0] ?? node.tag;
        refuse(node, `tag ${written} is not accepted`, 'quote the value to make it text', at);
      }
      if (isScalar(node) && spansLines(node, lines)) {
        refuse(
          node,
          node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED
            ? 'multi-line strings (| and >) are not accepted'
            : 'a value that spans lines is not accepted',
          'write the value on one line',
        );
      }
    },
  });
  return problems;
}

function spansLines(node: Scalar, lines: LineCounter): boolean {
  const [start, end] = node.range ?? [0, 0];
  return end > start && lines.linePos(start).line !== lines.linePos(end - 1).line;
}

// ---------------------------------------------------------------------------------------------------
// The settings in the file: the `egress-guard edge` flags without `--`, in camelCase, with `limits` and
// `dns` nested.
// ---------------------------------------------------------------------------------------------------

const listenTexts = z.union([z.string(), z.array(z.string())], {
  error: 'expected host:port or a list of them',
});
const mapping = (message: string) =>
  z.record(z.string(), z.unknown(), {
    error: (issue) => (issue.code === 'invalid_type' ? message : undefined),
  });

/**
 * The shape of a config file, top level. Only the shape is checked here: values that are edge options
 * (durations, counts, addresses: everything but `policy`, the listeners and `admin`) keep their own path
 * in {@link EdgeOptions} and are checked with the options, whose problems point back at the file.
 *
 * To add a setting that has an option of the same name (`workers`, `dns.minTtl`), add its top-level key
 * here as `z.unknown().optional()` (nested keys come with their mapping).
 */
const fileShape = {
  policy: z.string({ error: 'expected a path' }).min(1, { error: 'expected a path' }).optional(),
  explicit: listenTexts.optional(),
  transparent: listenTexts.optional(),
  sni: listenTexts.optional(),
  admin: z
    .union([z.string(), z.literal(false), z.null()], {
      error: 'expected host:port, or false for no admin server',
    })
    .optional(),
  limits: mapping('expected a mapping of limits').optional(),
  dns: mapping('expected a mapping of DNS settings').optional(),
  watch: z.unknown().optional(),
  watchDebounce: z.unknown().optional(),
  workers: z.unknown().optional(),
  proxyAuth: z.string({ error: 'expected a path' }).min(1, { error: 'expected a path' }).optional(),
};
const fileSchema = z.strictObject(fileShape, {
  error: (issue) =>
    issue.code === 'invalid_type' ? 'expected a mapping of settings at the top level' : undefined,
});

/** The settings of a config file whose shape is right; values not checked yet. */
export type EdgeFileSettings = Partial<z.output<typeof fileSchema>> & Record<string, unknown>;

/** A config file read and its shape checked. */
export interface EdgeConfigFile {
  /** The parsed document, for positions; undefined when the file could not be read or parsed. */
  doc: ConfigDocument | undefined;
  /** Every setting of the right shape (the others are in `problems`). */
  settings: EdgeFileSettings;
  /** Problems at a place in the file (syntax, refused features, shape, unknown keys). */
  problems: ConfigProblem[];
  /** Why the file could not be read (`ENOENT`...), a problem without a place. */
  unreadable?: string | undefined;
}

/**
 * Reads `egress-guard edge --config FILE`: the text, its syntax, and the shape of the top level (unknown
 * keys with a "did you mean" hint). Never throws for a bad file: every problem is returned.
 */
export function readEdgeConfigFile(path: string): EdgeConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return { doc: undefined, settings: {}, problems: [], unreadable: `cannot read the config file (${why})` };
  }
  let doc: ConfigDocument;
  try {
    doc = readConfigDocument(text, path);
  } catch (error) {
    if (!(error instanceof ConfigFileError)) throw error;
    return { doc: undefined, settings: {}, problems: [...error.problems] };
  }
  const shape = fileSchema.safeParse(doc.data);
  if (shape.success) return { doc, settings: shape.data, problems: [] };
  const known = Object.keys(fileShape);
  const problems = optionProblemsOf(shape.error, doc.data, () => known).map((p) => problemInFile(doc, p));
  // Keep what has the right shape, so the flags and the rest of the file are still checked.
  const settings: Record<string, unknown> = {};
  if (typeof doc.data === 'object' && doc.data !== null && !Array.isArray(doc.data)) {
    for (const [key, schema] of Object.entries(fileShape)) {
      const one = schema.safeParse((doc.data as Record<string, unknown>)[key]);
      if (one.success && one.data !== undefined) settings[key] = one.data;
    }
  }
  return { doc, settings, problems };
}

/**
 * A problem placed in the config file: at `where` (a path into it; default the problem's own path), the
 * closest existing parent if that path is not in the file, or the key itself for unknown keys.
 */
export function problemInFile(
  doc: ConfigDocument,
  p: Pick<OptionProblem, 'message' | 'unknownKey'> & { path: readonly PropertyKey[] },
  where: readonly PropertyKey[] = p.path,
): ConfigProblem {
  return {
    file: doc.file,
    path: formatOptionPath(p.path),
    message: p.message,
    ...doc.positionOf(where, p.unknownKey === true),
  };
}
