import { Document, isMap, isSeq, type Node, Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
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

/** Comment text for the `yaml` package: one `# line` per entry; logged data never spans lines. */
function commentText(lines: readonly string[]): string {
  return lines.map((l) => ` ${l.replace(/[\r\n]+/g, ' ')}`).join('\n');
}

/** The rule as a plain object, keys in the order a reviewer reads them. */
function ruleObject(r: LearnedRule): Record<string, unknown> {
  const out: Record<string, unknown> = { name: r.name };
  for (const key of ['hosts', 'addresses', 'schemes', 'ports', 'methods', 'paths'] as const) {
    const values = r[key];
    if (values && values.length > 0) out[key] = values;
  }
  if (r.privateAddresses) out.privateAddresses = r.privateAddresses;
  if (r.dns) out.dns = r.dns;
  return out;
}

/** Lists and maps inside rules are written in flow style (`hosts: [a, b]`), one rule per block. */
function flowLists(rule: Node): void {
  if (!isMap(rule)) return;
  for (const pair of rule.items) if (isSeq(pair.value) || isMap(pair.value)) pair.value.flow = true;
}

function rulesNode(doc: Document, rules: readonly LearnedRule[]): YAMLSeq {
  const seq = doc.createNode(rules.map(ruleObject)) as YAMLSeq;
  seq.items.forEach((item, i) => {
    flowLists(item as Node);
    const comments = rules[i]!.comments;
    if (comments.length > 0) (item as Node).commentBefore = commentText(comments);
  });
  return seq;
}

/** Adds `key: value` to a map, with a blank line before the key. */
function setSpaced(map: YAMLMap, doc: Document, key: string, value: Node): void {
  const pair = doc.createPair(key, value);
  (pair.key as Node).spaceBefore = true;
  map.items.push(pair);
}

function servicesNode(doc: Document, services: readonly LearnedService[]): YAMLMap {
  const map = doc.createNode({}) as YAMLMap;
  for (const s of services) {
    const section = doc.createNode({}) as YAMLMap;
    if (s.sources.length > 0) {
      const sources = doc.createNode(s.sources) as YAMLSeq;
      sources.flow = true;
      section.items.push(doc.createPair('sources', sources));
    }
    if (s.rules.length > 0) section.items.push(doc.createPair('allow', rulesNode(doc, s.rules)));
    const first = section.items[0]?.key as Node | undefined;
    if (s.sourcesNote && first) first.commentBefore = commentText([s.sourcesNote]);
    map.items.push(doc.createPair(s.name, section));
  }
  return map;
}

/**
 * Renders the learned policy as commented YAML that `egress-guard lint` accepts, through the `yaml`
 * package's Document API: quoting (a name that reads as a number, a `*.` pattern) is the library's.
 */
export function renderPolicy(p: LearnedPolicy): string {
  const doc = new Document({});
  const root = doc.contents as YAMLMap;
  root.set('version', 1);
  root.set('mode', p.mode);
  if (p.reportUntil) {
    // Quoted: a date must stay a string to every YAML reader (YAML 1.1 readers make it a timestamp).
    const until = new Scalar(p.reportUntil);
    until.type = Scalar.QUOTE_DOUBLE;
    root.set('reportUntil', until);
  }
  if (p.allow.length > 0) setSpaced(root, doc, 'allow', rulesNode(doc, p.allow));
  if (p.services.length > 0) setSpaced(root, doc, 'services', servicesNode(doc, p.services));
  if (p.header.length > 0) doc.commentBefore = commentText(p.header);
  if (p.footer.length > 0) doc.comment = commentText(p.footer);
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
