/**
 * Reads the edge's small config file: JSON, or the plain subset of YAML such a file needs (nested
 * mappings, lists of scalars in block or `[a, b]` form, quoted and plain scalars, comments). Anything
 * outside that subset (anchors, multi-line strings, tags, lists of mappings) is refused with its line,
 * never guessed at; the policy file itself is read by `@egress-guard/policy`, not here.
 */

/** Thrown for text that is not valid JSON or not in the supported YAML subset. */
export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'ConfigFileError';
  }
}

/** Parses a config file's text. JSON when it starts with `{`, YAML subset otherwise. */
export function parseConfigText(text: string, file = '<config>'): unknown {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch (error) {
      throw new ConfigFileError(file, 0, `invalid JSON: ${(error as Error).message}`);
    }
  }
  return parseYamlSubset(text, file);
}

interface Line {
  no: number;
  indent: number;
  text: string;
}

function parseYamlSubset(text: string, file: string): unknown {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const no = i + 1;
    if (raw.includes('\t') && /^\s*\t/.test(raw))
      throw new ConfigFileError(file, no, 'tabs are not allowed for indentation');
    const stripped = stripComment(raw, file, no).trimEnd();
    if (stripped.trim() === '' || stripped.trim() === '---') return;
    const indent = stripped.length - stripped.trimStart().length;
    lines.push({ no, indent, text: stripped.trim() });
  });
  if (lines.length === 0) return {};
  let pos = 0;

  const parseBlock = (indent: number): unknown => {
    const first = lines[pos]!;
    if (first.text.startsWith('- ') || first.text === '-') {
      const list: unknown[] = [];
      while (pos < lines.length && lines[pos]!.indent === indent && lines[pos]!.text.startsWith('-')) {
        const line = lines[pos]!;
        const item = line.text.slice(1).trim();
        if (item === '' || /^[^'"[{]*:(\s|$)/.test(item)) {
          throw new ConfigFileError(
            file,
            line.no,
            'lists of mappings are not supported here; list plain values',
          );
        }
        list.push(scalar(item, file, line.no));
        pos++;
      }
      return list;
    }
    const map: Record<string, unknown> = {};
    while (pos < lines.length && lines[pos]!.indent === indent) {
      const line = lines[pos]!;
      const m = /^("[^"]*"|'[^']*'|[^:'"]+):(?:\s+(.*))?$/.exec(line.text);
      if (!m)
        throw new ConfigFileError(file, line.no, `expected "key: value", got ${JSON.stringify(line.text)}`);
      const key = unquote(m[1]!.trim());
      if (Object.hasOwn(map, key)) throw new ConfigFileError(file, line.no, `duplicate key "${key}"`);
      pos++;
      const rest = m[2]?.trim();
      if (rest !== undefined && rest !== '') {
        map[key] = scalar(rest, file, line.no);
        continue;
      }
      const next = lines[pos];
      if (next && next.indent > indent) map[key] = parseBlock(next.indent);
      else if (next && next.indent === indent && next.text.startsWith('-')) map[key] = parseBlock(indent);
      else map[key] = null;
    }
    return map;
  };

  const value = parseBlock(lines[0]!.indent);
  if (pos < lines.length) {
    const line = lines[pos]!;
    throw new ConfigFileError(file, line.no, 'unexpected indentation');
  }
  return value;
}

function stripComment(raw: string, file: string, no: number): string {
  let quote: string | undefined;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    // A quote opens a string only at the start of a token, so `it's` in a plain value is left alone.
    if ((c === '"' || c === "'") && (i === 0 || /[\s[,:]/.test(raw[i - 1]!))) quote = c;
    else if (c === '#' && (i === 0 || raw[i - 1] === ' ')) return raw.slice(0, i);
  }
  if (quote) throw new ConfigFileError(file, no, 'unterminated quoted string');
  return raw;
}

function unquote(text: string): string {
  if ((text.startsWith('"') && text.endsWith('"')) || (text.startsWith("'") && text.endsWith("'"))) {
    return text.slice(1, -1);
  }
  return text;
}

function scalar(text: string, file: string, no: number): unknown {
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new ConfigFileError(file, no, 'unterminated [ list ]');
    const inner = text.slice(1, -1).trim();
    if (inner === '') return [];
    return splitFlow(inner, file, no).map((item) => scalar(item.trim(), file, no));
  }
  if (text.startsWith('{'))
    throw new ConfigFileError(file, no, '{ } mappings are not supported; use indented keys');
  if (/^[&*!|>%@`]/.test(text)) {
    throw new ConfigFileError(file, no, `YAML feature "${text[0]}" is not supported in the edge config file`);
  }
  if (text.startsWith('"')) {
    if (!text.endsWith('"') || text.length < 2) throw new ConfigFileError(file, no, 'unterminated string');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ConfigFileError(file, no, `invalid double-quoted string ${text}`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new ConfigFileError(file, no, 'unterminated string');
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null' || text === '~') return null;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

function splitFlow(inner: string, file: string, no: number): string[] {
  const items: string[] = [];
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{')
      throw new ConfigFileError(file, no, 'nested collections are not supported');
    else if (c === ',') {
      items.push(inner.slice(start, i));
      start = i + 1;
    }
  }
  items.push(inner.slice(start));
  return items;
}
