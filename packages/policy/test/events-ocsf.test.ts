import { describe, expect, it } from 'vitest';
import { type CompletionEvent, type DecisionEvent, OCSF_VERSION, toOcsf } from '../src/index.js';

const HASH = 'f'.repeat(64);
const T = Date.parse('2026-01-31T10:00:00Z');
const httpDecision: DecisionEvent = {
  'event.name': 'egress.decision',
  'egress.schema': 1,
  'egress.source': 'sdk',
  'service.name': 'payments',
  'egress.id': 'r-1',
  'egress.decision': 'allowed',
  'egress.reason': 'allowed',
  'egress.rule': 'stripe',
  'egress.mode': 'enforce',
  'egress.policy.hash': HASH,
  'egress.hook': 'fetch',
  'url.scheme': 'https',
  'url.full': 'https://api.stripe.com/v1/charges?REDACTED',
  'url.path': '/v1/charges',
  'server.address': 'api.stripe.com',
  'server.port': 443,
  'http.request.method': 'post',
};

describe('toOcsf', () => {
  it('maps an HTTP request decision to HTTP Activity (4002), activity from the method', () => {
    const o = toOcsf(httpDecision, { time: T });
    expect(o).toMatchObject({
      class_uid: 4002,
      class_name: 'HTTP Activity',
      category_uid: 4,
      activity_id: 6,
      activity_name: 'Post',
      type_uid: 400206,
      type_name: 'HTTP Activity: Post',
      time: T,
      severity_id: 1,
      action_id: 1,
      action: 'Allowed',
      disposition_id: 1,
      status_id: 1,
      status_code: 'allowed',
      is_alert: false,
      metadata: {
        version: OCSF_VERSION,
        product: { name: 'egress-guard', vendor_name: 'egress-guard', feature: { name: 'sdk' } },
        correlation_uid: 'r-1',
      },
      http_request: {
        http_method: 'POST',
        url: {
          scheme: 'https',
          hostname: 'api.stripe.com',
          port: 443,
          path: '/v1/charges',
          url_string: 'https://api.stripe.com/v1/charges?REDACTED',
        },
      },
      dst_endpoint: { hostname: 'api.stripe.com', port: 443 },
      src_endpoint: { svc_name: 'payments' },
      connection_info: { direction_id: 2, direction: 'Outbound', protocol_name: 'tcp' },
      firewall_rule: { name: 'stripe' },
      policy: { uid: HASH },
    });
    expect(o.unmapped).toEqual({
      'egress.schema': 1,
      'egress.source': 'sdk',
      'egress.reason': 'allowed',
      'egress.mode': 'enforce',
      'egress.hook': 'fetch',
      'egress.decision': 'allowed',
      'url.scheme': 'https',
    });
  });

  it('maps a denied raw connection to Network Activity (4001) Refuse, Denied/Blocked, an alert', () => {
    const o = toOcsf({
      ...httpDecision,
      'egress.source': 'edge',
      'egress.hook': 'edge.transparent',
      'egress.decision': 'denied',
      'egress.reason': 'sni_mismatch',
      'egress.rule': undefined,
      'egress.message': 'egress denied: SNI does not match',
      'url.scheme': 'tls',
      'url.full': undefined,
      'url.path': undefined,
      'http.request.method': undefined,
      'server.address': '203.0.113.9',
      'client.address': '10.0.1.5',
      'tls.client.server_name': 'api.stripe.com',
    });
    expect(o).toMatchObject({
      class_uid: 4001,
      activity_id: 5,
      activity_name: 'Refuse',
      type_uid: 400105,
      action_id: 2,
      disposition_id: 2,
      disposition: 'Blocked',
      status_id: 2,
      status_detail: 'sni_mismatch',
      severity_id: 3,
      is_alert: true,
      message: 'egress denied: SNI does not match',
      dst_endpoint: { ip: '203.0.113.9', port: 443 },
      src_endpoint: { ip: '10.0.1.5', svc_name: 'payments' },
      tls: { sni: 'api.stripe.com' },
    });
    expect(o).not.toHaveProperty('http_request');
    expect(o).not.toHaveProperty('firewall_rule');
  });

  it('maps report mode to the Observed action with a Detected disposition', () => {
    const o = toOcsf({ ...httpDecision, 'egress.decision': 'reported', 'egress.reason': 'path_not_allowed' });
    expect(o).toMatchObject({
      action_id: 3,
      action: 'Observed',
      disposition_id: 15,
      disposition: 'Detected',
    });
    expect(o).toMatchObject({ severity_id: 2, status_id: 1, is_alert: true });
  });

  it('maps completions: HTTP responses to 4002, connections to 4001 Close or Fail, with bytes and TLS', () => {
    const done: CompletionEvent = {
      'event.name': 'egress.completion',
      'egress.schema': 1,
      'egress.source': 'edge',
      'egress.id': 'c-1',
      'egress.hook': 'edge.explicit',
      'egress.rule': 'stripe',
      'egress.policy.hash': HASH,
      'egress.outcome': 'ok',
      'egress.duration_ms': 41.7,
      'server.address': 'api.stripe.com',
      'server.port': 443,
      'tls.protocol.version': 'TLSv1.3',
      'tls.client.server_name': 'api.stripe.com',
      'tls.client.alpn': 'h2',
      'egress.bytes.sent': 600,
      'egress.bytes.received': 5000,
      'egress.close_reason': 'server_end',
    };
    expect(toOcsf(done)).toMatchObject({
      class_uid: 4001,
      activity_id: 2,
      activity_name: 'Close',
      duration: 42,
      status_id: 1,
      status_detail: 'server_end',
      traffic: { bytes_in: 5000, bytes_out: 600, bytes: 5600 },
      tls: { sni: 'api.stripe.com', version: 'TLSv1.3' },
      metadata: { correlation_uid: 'c-1' },
      unmapped: { 'tls.client.alpn': 'h2', 'egress.close_reason': 'server_end' },
    });
    expect(toOcsf({ ...done, 'egress.outcome': 'timeout' })).toMatchObject({ activity_id: 4, status_id: 2 });
    expect(toOcsf({ ...done, 'egress.outcome': 'circuit_open' })).toMatchObject({ activity_id: 5 });
    expect(toOcsf({ ...done, 'http.response.status_code': 503, 'egress.source': 'sdk' })).toMatchObject({
      class_uid: 4002,
      activity_id: 99,
      type_uid: 400299,
      http_response: { code: 503 },
    });
  });

  it('puts policy, breaker and loss events in Base Event (0) with every field under unmapped', () => {
    const o = toOcsf(
      {
        'event.name': 'egress.policy.reloaded',
        'egress.schema': 1,
        'egress.source': 'sdk',
        'egress.policy.hash': HASH,
        'egress.policy.previous_hash': 'e'.repeat(64),
        'egress.policy.diff': { added: ['allow:new'], removed: [], changed: [] },
      },
      { time: T },
    );
    expect(o).toMatchObject({
      class_uid: 0,
      category_uid: 0,
      activity_id: 99,
      activity_name: 'egress.policy.reloaded',
      type_uid: 99,
      severity_id: 1,
      time: T,
      unmapped: {
        'egress.policy.hash': HASH,
        'egress.policy.previous_hash': 'e'.repeat(64),
        'egress.policy.diff': { added: ['allow:new'], removed: [], changed: [] },
      },
    });
    const dropped = toOcsf({
      'event.name': 'egress.events.dropped',
      'egress.schema': 1,
      'egress.source': 'edge',
      'egress.events.dropped': 3,
      'egress.events.dropped_total': 3,
      'egress.events.drop_reason': 'sink_error',
      'egress.events.since': '2026-01-31T10:00:00.000Z',
    });
    expect(dropped).toMatchObject({ class_uid: 0, severity_id: 3, unmapped: { 'egress.events.dropped': 3 } });
  });
});
