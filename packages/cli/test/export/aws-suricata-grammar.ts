/**
 * A structural check of Suricata rules as AWS Network Firewall accepts them in a stateful rule group
 * (Suricata-compatible rules string). Debian bookworm's main archive has no `suricata` package (only
 * suricata-update), so `suricata -T` cannot run here; this checks what the rule grammar of Suricata's
 * documentation (rules/intro: action, header, options) requires, and the keywords export writes:
 *
 * - header: `action protocol source sport direction destination dport`, actions pass/drop/reject/alert,
 *   application-layer protocols tls/http and tcp/ip, variables `$HOME_NET`/`$EXTERNAL_NET`, `any`, port lists;
 * - options: `keyword;` or `keyword:value;`, values with `;` `"` `\` escaped inside quotes, every rule with
 *   `msg`, a unique numeric `sid` and a `rev`;
 * - sticky buffers (`tls.sni`, `http.host`, `http.method`) followed by `content`, content modifiers
 *   (`nocase`, `startswith`, `endswith`) only after a `content`, `pcre` as `"/.../flags"`.
 */

export interface ParsedRule {
  action: string;
  protocol: string;
  header: string[];
  options: Array<{ keyword: string; value: string | undefined }>;
}

const ACTIONS = new Set(['pass', 'drop', 'reject', 'alert']);
const PROTOCOLS = new Set(['tls', 'http', 'tcp', 'ip', 'udp', 'dns']);
const KEYWORDS = new Set([
  'msg',
  'sid',
  'rev',
  'flow',
  'tls.sni',
  'tls.version',
  'ssl_version',
  'http.host',
  'http.method',
  'content',
  'nocase',
  'startswith',
  'endswith',
  'pcre',
  'metadata',
  'ip_proto',
]);
const STICKY = new Set(['tls.sni', 'http.host', 'http.method']);
const CONTENT_MODIFIERS = new Set(['nocase', 'startswith', 'endswith']);
const ADDRESS = /^(any|\$HOME_NET|\$EXTERNAL_NET|!?\[[0-9a-fA-F:.,/!$A-Z_ ]+\]|[0-9a-fA-F:.]+(\/\d+)?)$/;
const PORT = /^(any|\d{1,5}|\[\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*\]|\d{1,5}:\d{1,5})$/;

/** Parses one rule line; throws with the reason when it breaks the grammar. */
export function parseSuricataRule(line: string): ParsedRule {
  const open = line.indexOf('(');
  if (open < 0 || !line.endsWith(')')) throw new Error(`no option block: ${line}`);
  const header = line.slice(0, open).trim().split(/\s+/);
  if (header.length !== 7) throw new Error(`header needs 7 fields: ${line}`);
  const [action, protocol, src, sport, dir, dst, dport] = header as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!ACTIONS.has(action)) throw new Error(`action ${action}`);
  if (!PROTOCOLS.has(protocol)) throw new Error(`protocol ${protocol}`);
  if (dir !== '->') throw new Error(`direction ${dir}`);
  for (const a of [src, dst]) if (!ADDRESS.test(a)) throw new Error(`address ${a}`);
  for (const p of [sport, dport]) if (!PORT.test(p)) throw new Error(`port ${p}`);
  const options = splitOptions(line.slice(open + 1, -1));
  let lastBuffer: string | undefined;
  let sawContent = false;
  for (const { keyword, value } of options) {
    if (!KEYWORDS.has(keyword)) throw new Error(`unknown keyword ${keyword}: ${line}`);
    if (STICKY.has(keyword)) {
      if (value !== undefined) throw new Error(`${keyword} is a sticky buffer and takes no value`);
      lastBuffer = keyword;
      sawContent = false;
    } else if (keyword === 'content') {
      if (!value || !/^"([^"\\;]|\\[\\";|])*"$/.test(value)) throw new Error(`content value ${value}`);
      sawContent = true;
    } else if (CONTENT_MODIFIERS.has(keyword)) {
      if (!sawContent) throw new Error(`${keyword} without a preceding content: ${line}`);
    } else if (keyword === 'pcre') {
      if (!value || !/^"\/.+\/[ismxAEGRUB]*"$/.test(value)) throw new Error(`pcre value ${value}`);
      if (/;/.test(value.replace(/\\;/g, ''))) throw new Error(`unescaped ; in pcre: ${value}`);
    } else if (keyword === 'msg') {
      if (!value || !/^"([^"\\;]|\\[\\";])*"$/.test(value)) throw new Error(`msg value ${value}`);
    } else if (keyword === 'sid' || keyword === 'rev') {
      if (!value || !/^[1-9]\d*$/.test(value)) throw new Error(`${keyword} value ${value}`);
    } else if (keyword === 'flow') {
      const parts = (value ?? '').split(',');
      for (const part of parts) {
        if (!['to_server', 'to_client', 'established', 'not_established', 'stateless'].includes(part))
          throw new Error(`flow option ${part}`);
      }
    } else if (keyword === 'tls.version') {
      if (!value || !/^(1\.[0-3])$/.test(value)) throw new Error(`tls.version ${value}`);
    } else if (keyword === 'ssl_version') {
      if (!value || !/^(sslv2|sslv3|tls1\.[0-3])(,(sslv2|sslv3|tls1\.[0-3]))*$/.test(value))
        throw new Error(`ssl_version ${value}`);
    }
  }
  for (const required of ['msg', 'sid', 'rev']) {
    if (!options.some((o) => o.keyword === required)) throw new Error(`missing ${required}: ${line}`);
  }
  if (lastBuffer && !['tls', 'http'].includes(protocol))
    throw new Error(`${lastBuffer} on protocol ${protocol}`);
  return { action, protocol, header, options };
}

/** Splits `k:v; k; ...` honouring quotes and backslash escapes. */
function splitOptions(body: string): Array<{ keyword: string; value: string | undefined }> {
  const out: Array<{ keyword: string; value: string | undefined }> = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && quoted) {
      current += c + (body[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      const text = current.trim();
      current = '';
      if (text === '') continue;
      const colon = text.indexOf(':');
      out.push(
        colon < 0
          ? { keyword: text, value: undefined }
          : { keyword: text.slice(0, colon).trim(), value: text.slice(colon + 1).trim() },
      );
      continue;
    }
    current += c;
  }
  if (quoted) throw new Error(`unterminated quote: ${body}`);
  if (current.trim() !== '') throw new Error(`option without ";": ${current}`);
  return out;
}
