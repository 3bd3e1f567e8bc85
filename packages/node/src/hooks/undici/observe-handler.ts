/**
 * Watches a dispatch handler without changing its style. Node's fetch hands legacy handlers
 * (onConnect/onHeaders/onData/onComplete/onError) on Node 20-24 and new ones (onRequestStart/
 * onResponseStart/onResponseData/onResponseEnd/onResponseError) on Node 26; undici decides how to drive
 * a handler by which methods it has, so the wrapper has exactly the methods of the handler it wraps.
 */
export interface HandlerObserver {
  /** The request can be aborted from now on (legacy `abort` or the new controller's `abort`). */
  onAbortable(abort: (reason: Error) => void): void;
  onStatus(status: number): void;
  onBytes(length: number): void;
  onEnd(): void;
  /** Returns the error to hand on (the guard replaces undici's timeouts with ones that name the rule). */
  onError(error: Error): Error;
}

type AnyHandler = Record<string, unknown>;

// Handlers are mostly class instances whose methods live on the prototype: walk each prototype once.
const methodsByPrototype = new WeakMap<object, string[]>();

function methodsOf(handler: object): string[] {
  const proto = Object.getPrototypeOf(handler) as object | null;
  if (
    proto &&
    proto !== Object.prototype &&
    Object.getOwnPropertyNames(handler).every(
      (n) => !n.startsWith('on') || typeof (handler as AnyHandler)[n] !== 'function',
    )
  ) {
    let cached = methodsByPrototype.get(proto);
    if (!cached) {
      cached = walkMethods(handler);
      methodsByPrototype.set(proto, cached);
    }
    return cached;
  }
  return walkMethods(handler);
}

function walkMethods(handler: object): string[] {
  const names = new Set<string>();
  for (let p: object | null = handler; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name.startsWith('on') && typeof (handler as AnyHandler)[name] === 'function') names.add(name);
    }
  }
  return [...names];
}

export function observeHandler(handler: object, observer: HandlerObserver): object {
  const target = handler as AnyHandler;
  const wrapped: AnyHandler = {};
  const call = (name: string, args: unknown[]) =>
    (target[name] as (...a: unknown[]) => unknown).apply(handler, args);
  for (const name of methodsOf(handler)) {
    wrapped[name] = (...args: unknown[]) => {
      switch (name) {
        case 'onConnect':
          observer.onAbortable(args[0] as (reason: Error) => void);
          break;
        case 'onRequestStart': {
          const controller = args[0] as { abort(reason: Error): void };
          observer.onAbortable((reason) => controller.abort(reason));
          break;
        }
        case 'onHeaders':
        case 'onUpgrade':
          observer.onStatus(args[0] as number);
          break;
        case 'onResponseStart':
        case 'onRequestUpgrade':
          observer.onStatus(args[1] as number);
          break;
        case 'onData':
          observer.onBytes((args[0] as Buffer).length);
          break;
        case 'onResponseData':
          observer.onBytes((args[1] as Buffer).length);
          break;
        case 'onComplete':
        case 'onResponseEnd':
          observer.onEnd();
          break;
        case 'onError':
          args[0] = observer.onError(args[0] as Error);
          break;
        case 'onResponseError':
          args[1] = observer.onError(args[1] as Error);
          break;
      }
      return call(name, args);
    };
  }
  if (target.onUpgrade || target.onRequestUpgrade) {
    // An upgraded connection (WebSocket) ends the HTTP exchange at the upgrade.
    const upgrade = (target.onUpgrade ? 'onUpgrade' : 'onRequestUpgrade') as string;
    const inner = wrapped[upgrade] as (...a: unknown[]) => unknown;
    wrapped[upgrade] = (...args: unknown[]) => {
      const result = inner(...args);
      observer.onEnd();
      return result;
    };
  }
  return wrapped;
}

/** Fails a handler before anything was dispatched, in the style it speaks. */
export function failHandler(handler: object, error: Error): void {
  const h = handler as AnyHandler;
  if (typeof h.onResponseError === 'function' && typeof h.onRequestStart === 'function') {
    const controller = {
      abort() {},
      pause() {},
      resume() {},
      aborted: true,
      paused: false,
      reason: error,
    };
    (h.onResponseError as (c: unknown, e: Error) => void).call(handler, controller, error);
  } else if (typeof h.onError === 'function') {
    (h.onError as (e: Error) => void).call(handler, error);
  } else {
    throw error;
  }
}
