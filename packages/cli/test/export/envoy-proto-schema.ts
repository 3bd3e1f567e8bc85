/**
 * Strict validation of an Envoy configuration (its JSON form, as Envoy reads YAML) against Envoy's own protos,
 * as shipped by `@grpc/grpc-js-xds` (deps/envoy-api, xds, googleapis, protoc-gen-validate).
 *
 * protobufjs's `fromObject` ignores unknown fields and `verify` does not look for them, while Envoy refuses a
 * bootstrap with an unknown field (`--reject-unknown-dynamic-fields` aside, static config is strict). So this
 * walks the object against the message descriptors itself: every key must be a field (proto or JSON name),
 * values must have the field's type, `google.protobuf.Any` (`typed_config`) is resolved through its `@type`
 * and checked in turn, and the protoc-gen-validate rules Envoy enforces at load time that our output could break
 * (required messages and oneofs, minimum lengths and item counts, integer bounds) are checked too.
 */
import { accessSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

/** The proto files whose messages an exported Envoy configuration may name in `@type`. */
const PROTO_FILES = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/sni_dynamic_forward_proxy/v3/sni_dynamic_forward_proxy.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/dynamic_forward_proxy/v3/dynamic_forward_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/clusters/dynamic_forward_proxy/v3/cluster.proto',
  'envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto',
];

let rootPromise: Promise<protobuf.Root> | undefined;

/** Loads Envoy's protos once per test file. */
export function loadEnvoyProtos(): Promise<protobuf.Root> {
  rootPromise ??= (async () => {
    const deps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
    const includeDirs = [
      ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d)),
      // google/protobuf/*.proto (descriptor, any, duration, struct, wrappers...)
      path.dirname(require.resolve('protobufjs/package.json')),
    ];
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => {
      for (const dir of includeDirs) {
        const candidate = path.join(dir, target);
        try {
          accessSync(candidate);
          return candidate;
        } catch {
          // not in this include directory
        }
      }
      return target;
    };
    await root.load(PROTO_FILES, { keepCase: true });
    root.resolveAll();
    return root;
  })();
  return rootPromise;
}

/** Every problem found, each with its path in the document. */
export async function validateEnvoyMessage(typeName: string, value: unknown): Promise<string[]> {
  const root = await loadEnvoyProtos();
  const problems: string[] = [];
  checkMessage(root, root.lookupType(typeName), value, typeName, problems);
  return problems;
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);

function checkMessage(
  root: protobuf.Root,
  type: protobuf.Type,
  value: unknown,
  at: string,
  problems: string[],
): void {
  const full = type.fullName.replace(/^\./, '');
  if (checkWellKnown(root, full, value, at, problems)) return;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${at}: expected an object for ${full}`);
    return;
  }
  const byJsonName = new Map<string, protobuf.Field>();
  for (const field of type.fieldsArray) {
    byJsonName.set(field.name, field);
    byJsonName.set(camelCase(field.name), field);
  }
  const seen = new Set<protobuf.Field>();
  for (const [key, fieldValue] of Object.entries(value)) {
    const field = byJsonName.get(key);
    if (!field) {
      problems.push(`${at}.${key}: unknown field of ${full}`);
      continue;
    }
    seen.add(field);
    checkField(root, field, fieldValue, `${at}.${key}`, problems);
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.fieldsArray.filter((f) => seen.has(f));
    if (set.length > 1)
      problems.push(`${at}: more than one of oneof ${oneof.name}: ${set.map((f) => f.name)}`);
    if (oneof.options?.['(validate.required)'] === true && set.length === 0) {
      problems.push(`${at}: oneof ${oneof.name} of ${full} is required`);
    }
  }
  for (const field of type.fieldsArray) {
    // A field of a oneof is checked only when it is the member set.
    if (field.partOf) continue;
    const rules = field.options ?? {};
    if (rules['(validate.rules).message.required'] === true && !seen.has(field)) {
      problems.push(`${at}.${field.name}: required by ${full}`);
    }
    if (typeof rules['(validate.rules).string.min_len'] === 'number' && !seen.has(field)) {
      problems.push(`${at}.${field.name}: required (non-empty) by ${full}`);
    }
    if (typeof rules['(validate.rules).repeated.min_items'] === 'number' && !seen.has(field)) {
      problems.push(
        `${at}.${field.name}: needs at least ${rules['(validate.rules).repeated.min_items']} item(s)`,
      );
    }
  }
}

function checkField(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  at: string,
  problems: string[],
): void {
  if (field instanceof protobuf.MapField) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${at}: expected a map`);
      return;
    }
    for (const [k, v] of Object.entries(value)) checkSingle(root, field, v, `${at}.${k}`, problems);
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      problems.push(`${at}: expected a list`);
      return;
    }
    const min = field.options?.['(validate.rules).repeated.min_items'];
    if (typeof min === 'number' && value.length < min) problems.push(`${at}: needs at least ${min} item(s)`);
    value.forEach((item, i) => {
      checkSingle(root, field, item, `${at}[${i}]`, problems);
    });
    return;
  }
  checkSingle(root, field, value, at, problems);
}

function checkSingle(
  root: protobuf.Root,
  field: protobuf.Field,
  value: unknown,
  at: string,
  problems: string[],
): void {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    checkMessage(root, resolved, value, at, problems);
    return;
  }
  if (resolved instanceof protobuf.Enum) {
    const ok =
      (typeof value === 'string' && value in resolved.values) ||
      (typeof value === 'number' && Object.values(resolved.values).includes(value));
    if (!ok) problems.push(`${at}: ${JSON.stringify(value)} is not a value of ${resolved.name}`);
    return;
  }
  checkScalar(field.type, field.options ?? {}, value, at, problems);
}

function checkScalar(
  type: string,
  rules: Record<string, unknown>,
  value: unknown,
  at: string,
  problems: string[],
): void {
  if (type === 'string') {
    if (typeof value !== 'string') problems.push(`${at}: expected a string`);
    else {
      const min = rules['(validate.rules).string.min_len'];
      if (typeof min === 'number' && value.length < min) problems.push(`${at}: shorter than ${min}`);
    }
  } else if (type === 'bool') {
    if (typeof value !== 'boolean') problems.push(`${at}: expected a boolean`);
    else if (rules['(validate.rules).bool.const'] === true && value !== true)
      problems.push(`${at}: must be true`);
  } else if (INT32.has(type) || UINT32.has(type)) {
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      problems.push(`${at}: expected an integer`);
      return;
    }
    const lo = UINT32.has(type) ? 0 : -(2 ** 31);
    const hi = UINT32.has(type) ? 2 ** 32 - 1 : 2 ** 31 - 1;
    if (value < lo || value > hi) problems.push(`${at}: ${value} out of ${type} range`);
    const prefix = `(validate.rules).${type}`;
    const lte = rules[`${prefix}.lte`];
    const gte = rules[`${prefix}.gte`];
    const gt = rules[`${prefix}.gt`];
    if (typeof lte === 'number' && value > lte) problems.push(`${at}: ${value} > ${lte}`);
    if (typeof gte === 'number' && value < gte) problems.push(`${at}: ${value} < ${gte}`);
    if (typeof gt === 'number' && value <= gt) problems.push(`${at}: ${value} <= ${gt}`);
  } else if (INT64.has(type)) {
    if (
      !(typeof value === 'number' && Number.isInteger(value)) &&
      !(typeof value === 'string' && /^-?\d+$/.test(value))
    )
      problems.push(`${at}: expected an integer`);
  } else if (type === 'double' || type === 'float') {
    if (typeof value !== 'number') problems.push(`${at}: expected a number`);
  } else if (type === 'bytes') {
    if (typeof value !== 'string') problems.push(`${at}: expected base64 bytes`);
  } else {
    problems.push(`${at}: unhandled scalar type ${type}`);
  }
}

const WRAPPERS: Record<string, string> = {
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.DoubleValue': 'double',
};

/** The JSON forms of well-known types; true when `full` was one of them. */
function checkWellKnown(
  root: protobuf.Root,
  full: string,
  value: unknown,
  at: string,
  problems: string[],
): boolean {
  const wrapped = WRAPPERS[full];
  if (wrapped) {
    checkScalar(wrapped, {}, value, at, problems);
    return true;
  }
  if (full === 'google.protobuf.Duration') {
    if (typeof value !== 'string' || !/^-?\d+(\.\d{1,9})?s$/.test(value)) {
      problems.push(`${at}: expected a duration such as "5s", got ${JSON.stringify(value)}`);
    }
    return true;
  }
  if (full === 'google.protobuf.Struct' || full === 'google.protobuf.Value') return true;
  if (full === 'google.protobuf.Any') {
    if (typeof value !== 'object' || value === null) {
      problems.push(`${at}: expected an Any object`);
      return true;
    }
    const { '@type': url, ...rest } = value as Record<string, unknown>;
    if (typeof url !== 'string' || !url.startsWith('type.googleapis.com/')) {
      problems.push(`${at}: Any without a type.googleapis.com/ @type`);
      return true;
    }
    const name = url.slice('type.googleapis.com/'.length);
    let inner: protobuf.Type;
    try {
      inner = root.lookupType(name);
    } catch {
      problems.push(`${at}: @type ${name} is not a known message`);
      return true;
    }
    checkMessage(root, inner, rest, `${at}<${name}>`, problems);
    return true;
  }
  return false;
}

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}
