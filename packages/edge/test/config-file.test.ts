/**
 * The edge's config file reader: full YAML and JSON through the `yaml` library, every syntax problem at
 * once with its line and column, and positions of values for the problems found later.
 */
import { describe, expect, it } from 'vitest';
import { readConfigDocument } from '../src/config-file.js';
import { ConfigFileError, parseConfigText } from '../src/index.js';

function syntaxError(text: string, file = 'edge.yaml'): ConfigFileError {
  try {
    parseConfigText(text, file);
  } catch (error) {
    if (error instanceof ConfigFileError) return error;
    throw error;
  }
  throw new Error('expected a ConfigFileError');
}

describe('parseConfigText', () => {
  it('reads plain YAML: nested and flow mappings, lists (of mappings too), quotes, comments', () => {
    expect(
      parseConfigText(`limits:
  helloTimeout: 3s # a comment
  maxConnections: 0x10
dns: {servers: [10.0.0.2, "10.0.0.3:53"]}
listeners:
  - kind: sni
    port: 8443
quoted: '3128'
`),
    ).toEqual({
      limits: { helloTimeout: '3s', maxConnections: 16 },
      dns: { servers: ['10.0.0.2', '10.0.0.3:53'] },
      listeners: [{ kind: 'sni', port: 8443 }],
      quoted: '3128',
    });
  });

  it('refuses anchors, aliases, tags and multi-line strings, each at its place (docs/edge.md)', () => {
    const error = syntaxError(`defaults: &d {helloTimeout: 3s}
limits: *d
port: !!str 3128
note: |
  two
  lines
folded: "one
  two"
`);
    expect(error.problems.map((p) => [p.line, p.column, p.message, p.hint])).toEqual([
      [1, 11, 'anchor &d is not accepted', 'write the value out where it is used'],
      [2, 9, 'alias *d is not accepted', 'write the value out where it is used'],
      [3, 7, 'tag !!str is not accepted', 'quote the value to make it text'],
      [4, 7, 'multi-line strings (| and >) are not accepted', 'write the value on one line'],
      [7, 9, 'a value that spans lines is not accepted', 'write the value on one line'],
    ]);
    expect(error.message.split('\n')[0]).toBe(
      'edge.yaml:1:11 anchor &d is not accepted (write the value out where it is used)',
    );
  });

  it('reads JSON, and YAML plain scalars as YAML 1.2 does', () => {
    expect(parseConfigText('{"policy": "p.yaml", "explicit": ["127.0.0.1:3128"], "watch": false}')).toEqual({
      policy: 'p.yaml',
      explicit: ['127.0.0.1:3128'],
      watch: false,
    });
    // Addresses stay text; `no` is not a boolean in YAML 1.2.
    expect(parseConfigText('admin: :9901\nexplicit: 127.0.0.1:3128\nwatch: no\nn: 1_000\n')).toEqual({
      admin: ':9901',
      explicit: '127.0.0.1:3128',
      watch: 'no',
      n: '1_000',
    });
  });

  it('reads an empty or comment-only document as no settings', () => {
    expect(parseConfigText('')).toEqual({});
    expect(parseConfigText('# nothing yet\n---\n')).toEqual({});
  });

  it('lists every syntax problem with its line and column', () => {
    const error = syntaxError('a: 1\na: 2\nb: [1, 2\nc: "open\n');
    expect(error).toMatchObject({ name: 'ConfigFileError', file: 'edge.yaml', line: 2, column: 1 });
    expect(error.problems.map((p) => [p.line, p.column, p.message])).toEqual([
      [2, 1, 'Map keys must be unique'],
      [4, 1, 'Flow sequence in block collection must be sufficiently indented and end with a ]'],
      [5, 1, 'Missing closing "quote'],
    ]);
    expect(error.message.split('\n')[0]).toBe(
      'edge.yaml:2:1 Map keys must be unique (each key may appear once)',
    );
  });

  it('refuses several documents and bad indentation, with the place', () => {
    expect(syntaxError('a: 1\n---\nb: 2\n').problems[0]).toMatchObject({
      line: 2,
      column: 1,
      message: expect.stringMatching(/^Source contains multiple documents/),
    });
    expect(() => parseConfigText('a: 1\n   b: 2\n', 'edge.yaml')).toThrow(
      /^edge\.yaml:1:4 Nested mappings are not allowed in compact mappings/,
    );
    expect(() => parseConfigText('{"a": 1,, "b": 2}', 'edge.json')).toThrow(/^edge\.json:1:\d+ /);
  });

  it('refuses aliases, so a small file cannot expand into a huge one', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 6; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      bomb.push(`${next}: &${next} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    expect(() => parseConfigText(bomb.join('\n'))).toThrow(/alias/i);
  });
});

describe('readConfigDocument', () => {
  const text = `policy: egress.yaml
explicit:
  - 127.0.0.1:3128
  - 127.0.0.1:3129
limits:
  helloTimeout: 3s
`;

  it('finds the line and column of a value, of a key, and of the closest parent', () => {
    const doc = readConfigDocument(text, 'edge.yaml');
    expect(doc.file).toBe('edge.yaml');
    expect(doc.positionOf(['explicit', 1])).toEqual({ line: 4, column: 5 });
    expect(doc.positionOf(['limits', 'helloTimeout'])).toEqual({ line: 6, column: 17 });
    expect(doc.positionOf(['limits', 'helloTimeout'], true)).toEqual({ line: 6, column: 3 });
    expect(doc.positionOf(['limits', 'idleTimeout'])).toEqual({ line: 6, column: 3 });
    expect(doc.positionOf([])).toEqual({ line: 1, column: 1 });
  });

  it('gives JSON values their places too', () => {
    const doc = readConfigDocument('{\n  "limits": {"helloTimeout": "soon"}\n}\n', 'edge.json');
    expect(doc.positionOf(['limits', 'helloTimeout'])).toEqual({ line: 2, column: 30 });
  });
});
