// The Auth0 surfaces scripts see, built once per JavaScript runtime
// (src/extensibility/host.rs evaluates this file before any script).
//
// Rust hands a login's facts in as JSON and takes the outcome back as JSON;
// everything between is plain JavaScript, so the objects scripts touch are
// ordinary objects. Rust re-checks what comes back (restricted claims,
// scopes the API does not define): nothing here is trusted for that.
(function () {
  "use strict";

  class UnauthorizedError extends Error {
    constructor(message) {
      super(message);
      this.name = "UnauthorizedError";
    }
  }

  const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

  const textOf = (e) => {
    if (e instanceof Error) return String(e.message);
    if (typeof e === "string") return e;
    try {
      const s = JSON.stringify(e);
      return s === undefined ? String(e) : s;
    } catch (_) {
      return String(e);
    }
  };

  // An engine limit (memory, stack) is the gateway's fault, not a denial.
  const isResourceFault = (e) =>
    e instanceof Error &&
    (e.name === "InternalError" || e instanceof RangeError) &&
    /out of memory|stack overflow|call stack size/i.test(String(e.message));

  // The login being decided; scripts run one at a time on this runtime.
  let current = null;

  // `thrown`: the script threw (or its Promise rejected) rather than
  // refusing through its callback; the metrics count it as its error.
  function fail(state, e, thrown) {
    if (state.outcome) return;
    if (isResourceFault(e)) {
      state.outcome = { fault: textOf(e) };
    } else if (e instanceof UnauthorizedError) {
      state.outcome = { deny: "unauthorized", message: textOf(e), thrown: !!thrown };
    } else {
      state.outcome = { deny: "access_denied", message: textOf(e), thrown: !!thrown };
    }
  }

  // Whole new metadata: the first level merged, a null value removes its key
  // (the Management API's PATCH, which Auth0's rules call).
  function merged(base, changes) {
    const out = Object.assign({}, base || {});
    for (const [k, v] of Object.entries(changes || {})) {
      if (v === null || v === undefined) delete out[k];
      else out[k] = clone(v);
    }
    return out;
  }

  function updater(kind) {
    return function (userId, metadata) {
      const state = current;
      if (!state) return Promise.reject(new Error("no login is running"));
      if (String(userId) !== state.facts.user.user_id) {
        return Promise.reject(
          new Error("passgate scripts may only update the metadata of the user who logs in")
        );
      }
      if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
        return Promise.reject(new Error(kind + " must be an object"));
      }
      const next = merged(state.user[kind], metadata);
      state.metadata[kind] = next;
      state.user[kind] = clone(next);
      return Promise.resolve(clone(state.user));
    };
  }

  const auth0 = Object.freeze({
    users: Object.freeze({
      updateAppMetadata: updater("app_metadata"),
      updateUserMetadata: updater("user_metadata"),
    }),
  });

  function noModules(name) {
    throw new Error(
      "require('" + String(name) + "') is not supported: passgate scripts cannot load modules"
    );
  }

  const console = Object.freeze({
    log: (...a) => current && current.logs.push(a.map(textOf).join(" ")),
    info: (...a) => current && current.logs.push(a.map(textOf).join(" ")),
    warn: (...a) => current && current.logs.push(a.map(textOf).join(" ")),
    error: (...a) => current && current.logs.push(a.map(textOf).join(" ")),
  });

  Object.defineProperty(globalThis, "UnauthorizedError", { value: UnauthorizedError });
  Object.defineProperty(globalThis, "auth0", { value: auth0 });
  Object.defineProperty(globalThis, "require", { value: noModules });
  Object.defineProperty(globalThis, "console", { value: console });

  // === compiling ===

  function compileRule(fn, configuration) {
    if (typeof fn !== "function") {
      throw new TypeError("a rule must be one function (user, context, callback) { ... }");
    }
    return { fn, configuration: Object.freeze(clone(configuration)), global: {} };
  }

  function compileAction(factory, secrets) {
    const module = { exports: {} };
    factory(module.exports, module, noModules);
    const handler = module.exports && module.exports.onExecutePostLogin;
    if (typeof handler !== "function") {
      throw new TypeError("the action does not define exports.onExecutePostLogin");
    }
    return { handler, secrets: Object.freeze(clone(secrets)) };
  }

  // === one login ===

  function start(input) {
    const facts = JSON.parse(input);
    current = {
      facts,
      user: clone(facts.user),
      scopes: facts.scopes.slice(),
      access: {},
      id: {},
      metadata: {},
      mfa: null,
      redirect: false,
      outcome: null,
      warnings: [],
      logs: [],
      context: null,
    };
    return current;
  }

  function ruleContext(state) {
    const f = state.facts;
    return {
      clientID: f.client.client_id,
      clientName: f.client.name,
      clientMetadata: clone(f.client.metadata),
      connection: f.connection.name,
      connectionStrategy: f.connection.strategy,
      protocol: f.protocol,
      request: {
        ip: f.request.ip,
        userAgent: f.request.user_agent,
        hostname: f.request.hostname,
        body: clone(f.request.body),
        query: {},
        geoip: {},
      },
      stats: { loginsCount: f.logins_count },
      accessToken: {},
      idToken: {},
      sessionID: undefined,
      authentication: { methods: clone(f.methods) },
    };
  }

  // What a rule left in `context`: claims, replaced scopes, MFA, redirect.
  function collectRule(state, context) {
    if (!context || typeof context !== "object") return;
    for (const [target, into] of [
      [context.accessToken, state.access],
      [context.idToken, state.id],
    ]) {
      if (!target || typeof target !== "object") continue;
      for (const [k, v] of Object.entries(target)) {
        if (target === context.accessToken && k === "scope") continue;
        into[k] = v === undefined ? null : clone(v);
      }
    }
    const scope = context.accessToken && context.accessToken.scope;
    if (Array.isArray(scope)) state.scopes = scope.map(String);
    else if (typeof scope === "string") state.scopes = scope.split(" ").filter((s) => s);
    if (context.multifactor) {
      const provider = context.multifactor.provider;
      state.mfa = provider ? String(provider) : "any";
    }
    if (context.redirect) state.redirect = true;
  }

  function runRule(rule, state) {
    if (!state.context) state.context = ruleContext(state);
    globalThis.configuration = rule.configuration;
    globalThis.global = rule.global;
    return new Promise((resolve) => {
      let done = false;
      const callback = (err, user, context) => {
        if (done) return;
        done = true;
        if (err) {
          fail(state, typeof err === "string" ? new Error(err) : err);
        } else {
          if (user && typeof user === "object") state.user = user;
          if (context && typeof context === "object") state.context = context;
          collectRule(state, state.context);
        }
        resolve();
      };
      try {
        rule.fn(state.user, state.context, callback);
      } catch (e) {
        if (!done) {
          done = true;
          fail(state, e, true);
          resolve();
        }
      }
    });
  }

  function runAction(action, state) {
    const f = state.facts;
    const tokenApi = (claims) => ({
      setCustomClaim(name, value) {
        claims[String(name)] = value === undefined ? null : clone(value);
      },
    });
    const accessToken = tokenApi(state.access);
    accessToken.addScope = (s) => {
      s = String(s);
      if (!state.scopes.includes(s)) state.scopes.push(s);
    };
    accessToken.removeScope = (s) => {
      state.scopes = state.scopes.filter((x) => x !== String(s));
    };
    const metadataSetter = (kind) => (key, value) => {
      const next = merged(state.user[kind], { [String(key)]: value });
      state.metadata[kind] = next;
      state.user[kind] = clone(next);
    };
    const api = {
      access: {
        deny(reason) {
          if (!state.outcome) {
            state.outcome = { deny: "access_denied", message: String(reason === undefined ? "" : reason) };
          }
          return api;
        },
      },
      accessToken,
      idToken: tokenApi(state.id),
      multifactor: {
        enable(provider) {
          state.mfa = provider ? String(provider) : "any";
        },
      },
      user: {
        setAppMetadata: metadataSetter("app_metadata"),
        setUserMetadata: metadataSetter("user_metadata"),
      },
      cache: {
        get(key) {
          const v = __passgate_cache_get(String(key));
          return v === undefined || v === null ? undefined : { value: JSON.parse(v) };
        },
        set(key, value, options) {
          const ttl = options && options.ttl !== undefined ? Number(options.ttl) : 900000;
          const text = JSON.stringify(value === undefined ? null : value);
          __passgate_cache_set(String(key), text, isFinite(ttl) && ttl > 0 ? ttl : 900000);
          return { type: "success", record: { value } };
        },
        delete(key) {
          __passgate_cache_set(String(key), "null", 0);
          return { type: "success" };
        },
      },
      redirect: {
        sendUserTo() {
          state.redirect = true;
        },
        encodeToken() {
          throw new Error("api.redirect.encodeToken is not supported in the password exchange");
        },
        validateToken() {
          throw new Error("api.redirect.validateToken is not supported in the password exchange");
        },
      },
    };
    const event = {
      user: clone(state.user),
      client: clone(f.client),
      connection: clone(f.connection),
      request: clone(f.request),
      transaction: {
        protocol: f.protocol,
        requested_scopes: f.requested_scopes.slice(),
      },
      resource_server: { identifier: f.audience },
      stats: { logins_count: f.logins_count },
      secrets: action.secrets,
      authentication: { methods: clone(f.methods) },
    };
    return Promise.resolve()
      .then(() => action.handler(event, api))
      .then(
        () => undefined,
        (e) => fail(state, e, true)
      );
  }

  // Whether the chain stops after the script that just ran.
  function stopped(state) {
    return state.outcome !== null || state.redirect;
  }

  function finish(state) {
    current = null;
    return JSON.stringify({
      outcome: state.outcome,
      redirect: state.redirect,
      scopes: state.scopes,
      access: state.access,
      id: state.id,
      app_metadata: state.metadata.app_metadata === undefined ? null : state.metadata.app_metadata,
      user_metadata: state.metadata.user_metadata === undefined ? null : state.metadata.user_metadata,
      mfa: state.mfa,
      warnings: state.warnings,
      logs: state.logs,
    });
  }

  return { compileRule, compileAction, start, runRule, runAction, stopped, finish, fail };
})()
