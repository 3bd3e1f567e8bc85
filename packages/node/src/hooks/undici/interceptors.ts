import { decideProxyHop, decideTunnelTarget, parseAuthority } from '@egress-guard/policy';
import type { Dispatcher } from 'undici';
import type { GuardCore } from '../../guard/guard-core.js';
import { Deadlines } from '../../pipeline/deadlines.js';
import { Exchange } from '../../pipeline/exchange.js';
import { recordDecision } from '../../pipeline/record.js';
import { markDecided } from './decided-requests.js';
import { failHandler, observeHandler } from './observe-handler.js';
import { type RequestTarget, readRequestTarget } from './request-target.js';
import { translateUndiciTimeout } from './undici-timeouts.js';

/** undici's dispatch function, as its interceptors see it. */
export type Dispatch = (opts: Dispatcher.DispatchOptions, handler: object) => boolean;
/** An interceptor in undici's style: it takes the next dispatch and returns its own. */
export type Interceptor = (dispatch: Dispatch) => Dispatch;

// The request's exchange travels from one interceptor to the next on its dispatch options.
const EXCHANGE = Symbol('egress-guard.exchange');
type Carried = { exchange: Exchange; origin: string };
type WithExchange = Dispatcher.DispatchOptions & { [EXCHANGE]?: Carried };

/**
 * Decides each dispatch (scheme, host, port, method, path; through a forward proxy, the proxy hop and
 * the tunnel's target) and starts its exchange. A refused request fails its handler and is never passed on.
 */
export function decideInterceptor(guard: GuardCore, hook: string): Interceptor {
  return (dispatch) => (opts, handler) => {
    const target = readRequestTarget(opts);
    if (!target) {
      const decision = guard.invalidDecision(`the origin ${String(opts.origin).slice(0, 200)}`);
      const checked = recordDecision(guard, decision, { scheme: decision.scheme, port: decision.port }, hook);
      failHandler(handler, new Exchange(guard, checked, hook).refuse());
      return true;
    }
    const { origin, scheme, port, method, rawPath, path } = target;
    const exchange =
      target.tunnel === undefined
        ? Exchange.begin(guard, { scheme, host: origin.hostname, port, method, path }, hook, {
            url: `${origin.origin}${rawPath}`,
          })
        : decideTunnel(guard, `${hook}.proxy`, target, target.tunnel);
    if (!exchange.allowed) {
      failHandler(handler, exchange.refuse());
      return true;
    }
    // The socket this request opens, if a caller's own client opens it, is decided with this scheme.
    guard.noteRequest(target.tunnel === undefined ? scheme : exchange.decision.scheme, origin.hostname, port);
    const next: WithExchange = { ...opts, [EXCHANGE]: { exchange, origin: origin.origin } };
    markDecided(next, origin.origin, method, rawPath);
    return dispatch(next, handler);
  };
}

/** Admits each decided request through its rule's breaker; an open circuit fails it fast, undialled. */
export function breakerInterceptor(): Interceptor {
  return (dispatch) => (opts, handler) => {
    const carried = (opts as WithExchange)[EXCHANGE];
    const refused = carried?.exchange.admit(carried.origin);
    if (refused) {
      failHandler(handler, refused);
      return true;
    }
    return dispatch(opts, handler);
  };
}

/**
 * Times each decided request against its rule's response, idle and total limits on Node's timers, and
 * ends its exchange with what the response did (status, bytes, error) when it ends.
 */
export function deadlineInterceptor(): Interceptor {
  return (dispatch) => (opts, handler) => {
    const carried = (opts as WithExchange)[EXCHANGE];
    if (!carried) return dispatch(opts, handler);
    const { exchange } = carried;
    const t = exchange.decision.timeouts;
    let status = 0;
    let bytes = 0;
    let abort: ((reason: Error) => void) | undefined;
    let elapsed: Error | undefined;
    const deadlines = new Deadlines(exchange.decision, (error) => {
      elapsed = error;
      abort?.(error);
    });
    const observed = observeHandler(handler, {
      onAbortable: (fn) => {
        abort = fn;
        deadlines.awaitingResponse();
        if (elapsed) fn(elapsed);
      },
      onStatus: (s) => {
        status = s;
        deadlines.responding();
      },
      onBytes: (n) => {
        bytes += n;
        deadlines.data();
      },
      onEnd: () => {
        deadlines.clear();
        exchange.end({ status, fields: { 'egress.bytes.received': bytes } });
      },
      onError: (error) => {
        deadlines.clear();
        const delivered = translateUndiciTimeout(error, exchange.decision);
        exchange.end({ error: delivered, status, fields: { 'egress.bytes.received': bytes } });
        return delivered;
      },
    });
    // undici's own limits stay as a backstop; the rule's fire on time through the deadlines above. The
    // options are the decide interceptor's own copy (it carries the exchange): set them in place.
    const timed = opts as Dispatcher.DispatchOptions & { headersTimeout?: number; bodyTimeout?: number };
    timed.headersTimeout = Math.min(opts.headersTimeout ?? Number.POSITIVE_INFINITY, t.response);
    timed.bodyTimeout = Math.min(opts.bodyTimeout ?? Number.POSITIVE_INFINITY, t.idle);
    return dispatch(timed, observed);
  };
}

/** The guard's interceptors, in order: decide, admit, time. */
export function guardInterceptors(guard: GuardCore, hook: string): Interceptor[] {
  return [decideInterceptor(guard, hook), breakerInterceptor(), deadlineInterceptor()];
}

/** Composes interceptors over a dispatch, the first one outermost (as undici's `compose`). */
export function compose(dispatch: Dispatch, interceptors: readonly Interceptor[]): Dispatch {
  return interceptors.reduceRight<Dispatch>((next, interceptor) => interceptor(next), dispatch);
}

/**
 * A CONNECT, or an absolute-form request, through a forward proxy: the hop to the proxy is decided as a
 * transport (the proxy must be listed), and the tunnel's target must be a destination a hook just allowed
 * (the tunnel carries that request) or be allowed as a raw `tcp`/`tls` destination, so that a tunnel
 * cannot be opened by hand through an allowed proxy to a destination no rule lists. Both decisions are
 * recorded under one id.
 */
function decideTunnel(guard: GuardCore, hook: string, target: RequestTarget, authority: string): Exchange {
  const { origin, port } = target;
  const secure = origin.protocol === 'https:';
  const host = origin.hostname;
  const hop = decideProxyHop(guard.policy, { host, port, secure, service: guard.service }, guard.clock());
  const checked = recordDecision(guard, hop, { scheme: hop.scheme, host, port }, hook, {
    url: origin.origin,
  });
  const proxy = new Exchange(guard, checked, hook);
  if (!proxy.allowed) return proxy;
  const parsed = parseAuthority(authority);
  if (parsed && guard.recentRequest(parsed.host, parsed.port)) return proxy;
  const { decision } = decideTunnelTarget(guard.policy, authority, guard.service, guard.clock());
  const tunnelHook = hook.replace(/\.proxy$/, '.tunnel');
  const at = { scheme: decision.scheme, host: parsed?.host ?? decision.host, port: parsed?.port ?? port };
  recordDecision(guard, decision, at, tunnelHook, {}, proxy.id);
  return decision.allowed ? proxy : new Exchange(guard, { decision, id: proxy.id }, tunnelHook);
}
