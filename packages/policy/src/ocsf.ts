import type { CompletionEvent, DecisionEvent, EgressEvent } from './event-types.js';
import { HTTP_SCHEMES, type Scheme } from './types.js';

/** The OCSF schema version the mapping follows. */
export const OCSF_VERSION = '1.6.0';

/** OCSF class of each mapped event. */
export const OCSF_CLASSES = {
  base: { uid: 0, name: 'Base Event', category_uid: 0, category_name: 'Uncategorized' },
  network: { uid: 4001, name: 'Network Activity', category_uid: 4, category_name: 'Network Activity' },
  http: { uid: 4002, name: 'HTTP Activity', category_uid: 4, category_name: 'Network Activity' },
} as const;

/** An OCSF network endpoint (`dst_endpoint`, `src_endpoint`). */
export interface OcsfEndpoint {
  hostname?: string;
  ip?: string;
  port?: number;
  svc_name?: string;
}

/** One OCSF event as egress-guard writes it. Only the attributes the mapping sets are typed. */
export interface OcsfEvent {
  class_uid: number;
  class_name: string;
  category_uid: number;
  category_name: string;
  activity_id: number;
  activity_name: string;
  type_uid: number;
  type_name: string;
  /** Epoch milliseconds. */
  time: number;
  severity_id: number;
  severity: string;
  status_id?: number;
  status?: string;
  status_code?: string;
  status_detail?: string;
  message?: string;
  action_id?: number;
  action?: string;
  disposition_id?: number;
  disposition?: string;
  is_alert?: boolean;
  duration?: number;
  metadata: {
    version: string;
    product: { name: string; vendor_name: string; feature?: { name: string } };
    correlation_uid?: string;
    log_name: string;
    profiles?: string[];
  };
  dst_endpoint?: OcsfEndpoint;
  src_endpoint?: OcsfEndpoint;
  connection_info?: { direction_id: number; direction: string; protocol_name: string; protocol_num: number };
  http_request?: {
    http_method?: string;
    url: { scheme: string; hostname?: string; port?: number; path?: string; url_string?: string };
  };
  http_response?: { code: number };
  tls?: { sni?: string; version?: string };
  traffic?: { bytes_in?: number; bytes_out?: number; bytes?: number };
  firewall_rule?: { name: string };
  policy?: { name: string; uid?: string };
  /** The egress-guard fields with no OCSF attribute, under their own names. */
  unmapped: Record<string, unknown>;
}

/** Options of {@link toOcsf}. */
export interface OcsfOptions {
  /** Event time, epoch milliseconds. Default `Date.now()`. */
  time?: number | undefined;
}

// OCSF 1.6 HTTP Activity activity_id per method; any other method is 99 (Other) with its name.
const HTTP_ACTIVITIES: Readonly<Record<string, [number, string]>> = {
  CONNECT: [1, 'Connect'],
  DELETE: [2, 'Delete'],
  GET: [3, 'Get'],
  HEAD: [4, 'Head'],
  OPTIONS: [5, 'Options'],
  POST: [6, 'Post'],
  PUT: [7, 'Put'],
  TRACE: [8, 'Trace'],
  PATCH: [9, 'Patch'],
};

const SEVERITY = ['Unknown', 'Informational', 'Low', 'Medium', 'High'] as const;

// Fields the mapping places in OCSF attributes; everything else of the event goes to `unmapped`.
const MAPPED = new Set([
  'event.name',
  'egress.id',
  'egress.decision',
  'egress.message',
  'egress.rule',
  'egress.policy.hash',
  'egress.outcome',
  'egress.duration_ms',
  'url.scheme',
  'url.full',
  'url.path',
  'server.address',
  'server.port',
  'network.peer.address',
  'http.request.method',
  'http.response.status_code',
  'client.address',
  'service.name',
  'tls.client.server_name',
  'tls.protocol.version',
  'egress.bytes.sent',
  'egress.bytes.received',
]);

/**
 * Maps an event to OCSF 1.6: a decision or completion of an HTTP request (an HTTP scheme and a method,
 * or a response status) to HTTP Activity (4002), any other decision or completion to Network Activity
 * (4001), and policy, breaker and dropped-event events to Base Event (0). docs/events.md has the table.
 */
export function toOcsf(event: EgressEvent, options: OcsfOptions = {}): OcsfEvent {
  const time = options.time ?? Date.now();
  const unmapped: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) {
    if (value !== undefined && !MAPPED.has(key)) unmapped[key] = value;
  }
  const metadata: OcsfEvent['metadata'] = {
    version: OCSF_VERSION,
    product: { name: 'egress-guard', vendor_name: 'egress-guard', feature: { name: event['egress.source'] } },
    log_name: 'egress-guard audit',
  };
  switch (event['event.name']) {
    case 'egress.decision':
      return decision(event, time, metadata, unmapped);
    case 'egress.completion':
      return completion(event, time, metadata, unmapped);
    default: {
      // No OCSF class fits policy, breaker and loss events closely; Base Event keeps them in the same
      // stream with every native field under `unmapped`.
      const warn =
        event['event.name'] === 'egress.policy.rejected' ||
        event['event.name'] === 'egress.events.dropped' ||
        (event['event.name'] === 'egress.breaker.state' && event['egress.breaker.state'] === 'open');
      if (event['service.name'] !== undefined) unmapped['service.name'] = event['service.name'];
      const hash = 'egress.policy.hash' in event ? event['egress.policy.hash'] : undefined;
      if (hash) unmapped['egress.policy.hash'] = hash;
      if ('egress.rule' in event && event['egress.rule']) unmapped['egress.rule'] = event['egress.rule'];
      return {
        ...classFields('base', 99, event['event.name']),
        time,
        ...severity(warn ? 3 : 1),
        message: event['event.name'],
        metadata,
        unmapped,
      };
    }
  }
}

function classFields(kind: keyof typeof OCSF_CLASSES, activityId: number, activityName: string) {
  const c = OCSF_CLASSES[kind];
  return {
    class_uid: c.uid,
    class_name: c.name,
    category_uid: c.category_uid,
    category_name: c.category_name,
    activity_id: activityId,
    activity_name: activityName,
    type_uid: c.uid * 100 + activityId,
    type_name: `${c.name}: ${activityName}`,
  };
}

function severity(id: 1 | 2 | 3) {
  return { severity_id: id, severity: SEVERITY[id] };
}

function isHttp(scheme: string | undefined, method: string | undefined): boolean {
  return scheme !== undefined && HTTP_SCHEMES.has(scheme as Scheme) && method !== undefined;
}

function httpActivity(method: string | undefined): [number, string] {
  const m = method?.toUpperCase();
  return (m !== undefined ? HTTP_ACTIVITIES[m] : undefined) ?? [99, m ?? 'Other'];
}

function endpoints(event: DecisionEvent | CompletionEvent) {
  const dst: OcsfEndpoint = {};
  const host = event['server.address'];
  if (host !== undefined) {
    // An IP literal destination is an address, not a host name.
    if (/^[\d.]+$|:/.test(host)) dst.ip = host;
    else dst.hostname = host;
  }
  if ('network.peer.address' in event && event['network.peer.address'])
    dst.ip = event['network.peer.address'];
  if (event['server.port'] !== undefined) dst.port = event['server.port'];
  const src: OcsfEndpoint = {};
  if (event['client.address'] !== undefined) src.ip = event['client.address'];
  if (event['service.name'] !== undefined) src.svc_name = event['service.name'];
  return {
    dst_endpoint: dst,
    ...(Object.keys(src).length > 0 ? { src_endpoint: src } : {}),
    connection_info: { direction_id: 2, direction: 'Outbound', protocol_name: 'tcp', protocol_num: 6 },
  };
}

function decision(
  event: DecisionEvent,
  time: number,
  metadata: OcsfEvent['metadata'],
  unmapped: Record<string, unknown>,
): OcsfEvent {
  const result = event['egress.decision'];
  const method = event['http.request.method'];
  const http = isHttp(event['url.scheme'], method);
  const [activityId, activityName] = http
    ? httpActivity(method)
    : result === 'denied'
      ? [5, 'Refuse']
      : [1, 'Open'];
  // Report mode lets the traffic through: OCSF's "Observed" action with a "Detected" disposition.
  const outcome =
    result === 'allowed'
      ? { action_id: 1, action: 'Allowed', disposition_id: 1, disposition: 'Allowed' }
      : result === 'denied'
        ? { action_id: 2, action: 'Denied', disposition_id: 2, disposition: 'Blocked' }
        : { action_id: 3, action: 'Observed', disposition_id: 15, disposition: 'Detected' };
  unmapped['egress.decision'] = result;
  const out: OcsfEvent = {
    ...classFields(http ? 'http' : 'network', activityId, activityName),
    time,
    ...severity(result === 'allowed' ? 1 : result === 'reported' ? 2 : 3),
    status_id: result === 'denied' ? 2 : 1,
    status: result === 'denied' ? 'Failure' : 'Success',
    status_code: event['egress.reason'],
    status_detail: event['egress.reason'],
    message: event['egress.message'] ?? `egress ${result}: ${event['egress.reason']}`,
    ...outcome,
    is_alert: result !== 'allowed',
    metadata: { ...metadata, correlation_uid: event['egress.id'], profiles: ['security_control'] },
    ...endpoints(event),
    policy: { name: 'egress-guard policy', uid: event['egress.policy.hash'] },
    unmapped,
  };
  if (event['egress.rule'] !== undefined) out.firewall_rule = { name: event['egress.rule'] };
  if (http) {
    out.http_request = {
      http_method: method?.toUpperCase(),
      url: {
        scheme: event['url.scheme'],
        ...(event['server.address'] !== undefined ? { hostname: event['server.address'] } : {}),
        port: event['server.port'],
        ...(event['url.path'] !== undefined ? { path: event['url.path'] } : {}),
        ...(event['url.full'] !== undefined ? { url_string: event['url.full'] } : {}),
      },
    };
  } else if (event['url.full'] !== undefined || event['url.path'] !== undefined) {
    unmapped['url.full'] = event['url.full'];
    unmapped['url.path'] = event['url.path'];
  }
  unmapped['url.scheme'] = event['url.scheme'];
  if (event['tls.client.server_name'] !== undefined) out.tls = { sni: event['tls.client.server_name'] };
  return out;
}

function completion(
  event: CompletionEvent,
  time: number,
  metadata: OcsfEvent['metadata'],
  unmapped: Record<string, unknown>,
): OcsfEvent {
  const outcome = event['egress.outcome'];
  const status = event['http.response.status_code'];
  const http = status !== undefined;
  // A completion names no method (its decision does, under the same correlation_uid): 99 with "Response".
  const [activityId, activityName] = http
    ? [99, 'Response']
    : outcome === 'ok'
      ? [2, 'Close']
      : outcome === 'denied' || outcome === 'circuit_open'
        ? [5, 'Refuse']
        : [4, 'Fail'];
  const ok = outcome === 'ok';
  const out: OcsfEvent = {
    ...classFields(http ? 'http' : 'network', activityId, activityName),
    time,
    ...severity(ok ? 1 : 2),
    status_id: ok ? 1 : 2,
    status: ok ? 'Success' : 'Failure',
    status_code: outcome,
    ...(event['egress.close_reason'] !== undefined || event['error.type'] !== undefined
      ? { status_detail: [event['egress.close_reason'], event['error.type']].filter(Boolean).join(': ') }
      : {}),
    message: `egress completed: ${outcome}`,
    duration: Math.round(event['egress.duration_ms']),
    metadata: { ...metadata, correlation_uid: event['egress.id'] },
    ...endpoints(event),
    unmapped,
  };
  if (event['egress.policy.hash'])
    out.policy = { name: 'egress-guard policy', uid: event['egress.policy.hash'] };
  if (event['egress.rule'] !== undefined) out.firewall_rule = { name: event['egress.rule'] };
  if (status !== undefined) out.http_response = { code: status };
  const sent = event['egress.bytes.sent'];
  const received = event['egress.bytes.received'];
  if (sent !== undefined || received !== undefined) {
    out.traffic = {
      ...(received !== undefined ? { bytes_in: received } : {}),
      ...(sent !== undefined ? { bytes_out: sent } : {}),
      bytes: (sent ?? 0) + (received ?? 0),
    };
  }
  const tls = {
    ...(event['tls.client.server_name'] !== undefined ? { sni: event['tls.client.server_name'] } : {}),
    ...(event['tls.protocol.version'] !== undefined ? { version: event['tls.protocol.version'] } : {}),
  };
  if (Object.keys(tls).length > 0) out.tls = tls;
  return out;
}
