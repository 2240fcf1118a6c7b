// The mco web console: a bearer token, agent and action pickers from the DDLs the gateway
// serves, a form generated from the action's inputs (checked here before anything is sent;
// the gateway and the nodes check again), and a call's NDJSON stream drawn as it arrives.
// Plain ES2020, no framework, no inline code (the page's CSP allows only this file).
"use strict";

(() => {
  const TOKEN_KEY = "mco.token";
  const API = "/api/v1";

  const $ = (id) => document.getElementById(id);

  const state = {
    agents: [],
    ddl: null, // the chosen agent's DDL
    action: null, // the chosen action of it
    controller: null, // the call in flight
  };

  // ---- small DOM helpers -------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function showError(message) {
    const box = $("error");
    if (!message) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.hidden = false;
    box.textContent = message;
  }

  // ---- the token and the API ---------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  class Unauthorized extends Error {}

  class ApiFailure extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `HTTP ${status}`);
      this.status = status;
      this.kind = e.kind;
      this.field = e.field;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const t = token();
    if (t) headers.set("Authorization", `Bearer ${t}`);
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    const response = await fetch(API + path, { ...options, headers });
    if (response.status === 401) {
      let message = "the token was not accepted";
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (_) {
        /* not JSON */
      }
      loggedOut(`Not logged in (401): ${message}. Enter a valid token.`);
      throw new Unauthorized(message);
    }
    return response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      /* empty or not JSON */
    }
    if (!response.ok) throw new ApiFailure(response.status, body);
    return body;
  }

  function loggedOut(message) {
    const who = $("whoami");
    who.textContent = message;
    who.className = "whoami bad";
    $("agent").disabled = true;
    $("action").disabled = true;
    $("run").disabled = true;
  }

  async function login() {
    showError("");
    if (!token()) {
      loggedOut("not logged in: enter a bearer token");
      return;
    }
    const who = $("whoami");
    who.textContent = "checking…";
    who.className = "whoami";
    try {
      const me = await apiJson("/whoami");
      who.textContent = `logged in as ${me.caller}`;
      who.className = "whoami good";
      await loadAgents();
    } catch (e) {
      if (!(e instanceof Unauthorized)) {
        who.textContent = `cannot reach the gateway: ${e.message}`;
        who.className = "whoami bad";
      }
    }
  }

  // ---- agents and actions ------------------------------------------------------------

  async function loadAgents() {
    const body = await apiJson("/agents");
    state.agents = (body && body.agents) || [];
    state.agents.sort((a, b) => a.name.localeCompare(b.name));
    const select = $("agent");
    const previous = select.value || sessionStorage.getItem("mco.agent") || "";
    clear(select);
    select.append(el("option", { value: "", text: "— choose an agent —" }));
    for (const a of state.agents) {
      select.append(
        el("option", { value: a.name, title: a.description || "", text: a.name }),
      );
    }
    select.disabled = false;
    if (previous && state.agents.some((a) => a.name === previous)) {
      select.value = previous;
      await chooseAgent();
    }
  }

  async function chooseAgent() {
    const name = $("agent").value;
    sessionStorage.setItem("mco.agent", name);
    const actions = $("action");
    clear(actions);
    state.ddl = null;
    state.action = null;
    renderInputs();
    if (!name) {
      actions.append(el("option", { value: "", text: "—" }));
      actions.disabled = true;
      return;
    }
    try {
      state.ddl = await apiJson(`/agents/${encodeURIComponent(name)}`);
    } catch (e) {
      if (!(e instanceof Unauthorized)) showError(`Cannot load the DDL of ${name}: ${e.message}`);
      return;
    }
    if ($("agent").value !== name) return; // changed meanwhile
    actions.append(el("option", { value: "", text: "— choose an action —" }));
    const list = [...(state.ddl.actions || [])].sort((a, b) => a.action.localeCompare(b.action));
    for (const a of list) {
      actions.append(
        el("option", { value: a.action, title: a.description || "", text: a.action }),
      );
    }
    actions.disabled = false;
    const previous = sessionStorage.getItem("mco.action");
    if (previous && list.some((a) => a.action === previous)) {
      actions.value = previous;
      chooseAction();
    }
  }

  function chooseAction() {
    const name = $("action").value;
    sessionStorage.setItem("mco.action", name);
    state.action =
      (state.ddl && (state.ddl.actions || []).find((a) => a.action === name)) || null;
    renderInputs();
    showError("");
  }

  // ---- the form ----------------------------------------------------------------------

  const NUMERIC = new Set(["integer", "float", "number"]);

  function sortedInputs(action) {
    const inputs = Object.entries(action.input || {});
    // Required inputs first, then by name.
    inputs.sort(([an, a], [bn, b]) => {
      if (!!a.optional !== !!b.optional) return a.optional ? 1 : -1;
      return an.localeCompare(bn);
    });
    return inputs;
  }

  function renderInputs() {
    const box = $("inputs");
    clear(box);
    const action = state.action;
    $("action-description").textContent = action ? action.description || "" : "";
    $("run").disabled = !action;
    if (!action) {
      box.append(el("p", { class: "muted", text: "Pick an agent and an action." }));
      return;
    }
    const inputs = sortedInputs(action);
    if (inputs.length === 0) {
      box.append(el("p", { class: "muted", text: "This action takes no inputs." }));
      return;
    }
    for (const [name, spec] of inputs) box.append(inputField(name, spec));
  }

  function inputField(name, spec) {
    const id = `input-${name}`;
    const type = spec.type || "string";
    const required = !spec.optional;
    const hasDefault = spec.default !== undefined && spec.default !== null;
    const wrap = el("div", { class: `field input type-${type}`, "data-input": name });
    const label = el(
      "label",
      { for: id },
      spec.prompt || name,
      " ",
      el("code", { class: "name", text: name }),
      required ? el("span", { class: "required", title: "required", text: "*" }) : null,
    );
    let control;
    if (type === "boolean") {
      control = el("input", { id, type: "checkbox" });
      control.checked = hasDefault ? spec.default === true || spec.default === "true" : false;
      const row = el("div", { class: "check" }, control, label);
      wrap.append(row);
    } else {
      if (type === "list" && Array.isArray(spec.list)) {
        control = el("select", { id });
        if (!required || !hasDefault) {
          control.append(el("option", { value: "", text: required ? "— choose —" : "(not set)" }));
        }
        for (const v of spec.list) control.append(el("option", { value: v, text: v }));
        if (hasDefault) control.value = String(spec.default);
      } else if (type === "hash" || type === "array") {
        control = el("textarea", {
          id,
          rows: "3",
          spellcheck: "false",
          placeholder: type === "hash" ? '{"key": "value"}' : '["one", "two"]',
        });
        if (hasDefault) control.value = JSON.stringify(spec.default);
      } else if (NUMERIC.has(type)) {
        control = el("input", {
          id,
          type: "text",
          inputmode: type === "integer" ? "numeric" : "decimal",
          placeholder: type,
          spellcheck: "false",
        });
        if (hasDefault) control.value = String(spec.default);
      } else {
        control = el("input", { id, type: "text", spellcheck: "false" });
        if (spec.maxlength) control.setAttribute("data-maxlength", String(spec.maxlength));
        if (hasDefault) control.value = String(spec.default);
      }
      if (required) control.setAttribute("aria-required", "true");
      wrap.append(label, control);
    }
    const help = [spec.description, spec.validation ? `validation: ${spec.validation}` : null]
      .filter(Boolean)
      .join(" · ");
    if (help) wrap.append(el("div", { class: "help", text: help }));
    control.addEventListener("input", () => clearFieldError(wrap));
    control.addEventListener("change", () => clearFieldError(wrap));
    return wrap;
  }

  function clearFieldError(wrap) {
    for (const e of wrap.querySelectorAll(".field-error")) e.remove();
    wrap.classList.remove("invalid");
  }

  function setFieldError(wrap, message) {
    clearFieldError(wrap);
    wrap.classList.add("invalid");
    const control = wrap.querySelector("input, select, textarea");
    const error = el("div", { class: "field-error", role: "alert", text: message });
    const help = wrap.querySelector(".help");
    if (help) wrap.insertBefore(error, help);
    else if (control && control.type !== "checkbox") control.after(error);
    else wrap.append(error);
  }

  function clearAllErrors() {
    for (const w of document.querySelectorAll(".field.invalid")) clearFieldError(w);
    for (const e of document.querySelectorAll(".field-error")) e.remove();
    showError("");
  }

  // A `validation` that is a regular expression (not a named validator such as shellsafe).
  function validationRegex(rule) {
    if (typeof rule !== "string" || rule === "") return null;
    if (/^[a-z][a-z0-9_]*$/.test(rule)) return null; // named: the server checks it
    let source = rule;
    if (source.length >= 2 && source.startsWith("/") && source.endsWith("/")) {
      source = source.slice(1, -1);
    }
    try {
      return new RegExp(source, "u");
    } catch (_) {
      try {
        return new RegExp(source);
      } catch (_e) {
        return null;
      }
    }
  }

  // The typed value of one input, or {error}; {skip: true} when an optional one is empty.
  function readInput(name, spec) {
    const type = spec.type || "string";
    const control = $(`input-${name}`);
    const required = !spec.optional;
    if (type === "boolean") {
      const hasDefault = spec.default !== undefined && spec.default !== null;
      if (!required && !hasDefault && !control.checked) return { skip: true };
      return { value: control.checked };
    }
    const raw = control.value;
    const text = NUMERIC.has(type) ? raw.trim() : raw;
    if (text === "") {
      if (required) return { error: "required" };
      return { skip: true };
    }
    if (type === "integer") {
      if (!/^[+-]?\d+$/.test(text)) return { error: `${JSON.stringify(text)} is not an integer` };
      const n = Number(text);
      if (!Number.isSafeInteger(n)) return { error: `${text} is too large` };
      return { value: n };
    }
    if (type === "float" || type === "number") {
      const n = Number(text);
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text) || !Number.isFinite(n)) {
        return { error: `${JSON.stringify(text)} is not a number` };
      }
      return { value: n };
    }
    if (type === "hash" || type === "array") {
      let v;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return { error: `not valid JSON: ${e.message}` };
      }
      const ok = type === "array" ? Array.isArray(v) : v && typeof v === "object" && !Array.isArray(v);
      if (!ok) return { error: type === "array" ? "must be a JSON array" : "must be a JSON object" };
      return { value: v };
    }
    if (type === "list") {
      if (Array.isArray(spec.list) && !spec.list.includes(text)) {
        return { error: `must be one of ${spec.list.join(", ")}` };
      }
      return { value: text };
    }
    // string
    if (spec.maxlength && [...text].length > spec.maxlength) {
      return { error: `at most ${spec.maxlength} characters (this is ${[...text].length})` };
    }
    const re = validationRegex(spec.validation);
    if (re && !re.test(text)) {
      return { error: `does not match ${spec.validation}` };
    }
    return { value: text };
  }

  function words(id) {
    return $(id)
      .value.split(/\s+/)
      .map((w) => w.trim())
      .filter((w) => w !== "");
  }

  // The request body, or null after marking what is wrong.
  function buildBody() {
    const action = state.action;
    const inputs = {};
    let bad = false;
    for (const [name, spec] of sortedInputs(action)) {
      const wrap = document.querySelector(`[data-input="${CSS.escape(name)}"]`);
      const r = readInput(name, spec);
      if (r.error) {
        bad = true;
        setFieldError(wrap, r.error);
      } else if (!r.skip) {
        inputs[name] = r.value;
      }
    }
    const filter = {};
    for (const kind of ["fact", "class", "identity", "with"]) {
      const list = words(`filter-${kind}`);
      if (list.length) filter[kind] = list;
    }
    const compound = $("filter-compound").value.trim();
    if (compound) filter.compound = [compound];
    const body = { inputs, filter };
    const timeout = $("opt-timeout").value.trim();
    if (timeout !== "") {
      const t = Number(timeout);
      if (!Number.isFinite(t) || t <= 0) {
        bad = true;
        setFieldError($("opt-timeout").closest(".field"), "a positive number of seconds");
      } else body.timeout = t;
    }
    const limit = $("opt-limit").value.trim();
    if (limit !== "") {
      if (/^\d+$/.test(limit) && Number(limit) > 0) body.limit = Number(limit);
      else if (/^\d+(\.\d+)?%$/.test(limit)) body.limit = limit;
      else {
        bad = true;
        setFieldError($("opt-limit").closest(".field"), "a number of nodes or a percentage");
      }
    }
    return bad ? null : body;
  }

  // Where a server error about `field` (`inputs.fact`, `filter.fact[0]`, `timeout`) goes.
  function fieldWrap(field) {
    if (!field) return null;
    let m = /^inputs\.(.+)$/.exec(field);
    if (m) return document.querySelector(`[data-input="${CSS.escape(m[1])}"]`);
    m = /^filter\.(fact|class|identity|with|compound)/.exec(field);
    if (m) return $(`filter-${m[1]}`).closest(".field");
    if (field === "timeout") return $("opt-timeout").closest(".field");
    if (field === "limit") return $("opt-limit").closest(".field");
    return null;
  }

  // ---- results -----------------------------------------------------------------------

  function outputs() {
    return Object.entries((state.action && state.action.output) || {});
  }

  function resetResults() {
    const table = $("results");
    const head = el("tr", {}, el("th", { text: "Node" }), el("th", { text: "Status" }), el("th", { text: "Message" }));
    for (const [name, out] of outputs()) {
      head.append(el("th", { title: out.description || name, text: out.display_as || name }));
    }
    clear(table.tHead);
    table.tHead.append(head);
    clear(table.tBodies[0]);
    clear($("aggregates"));
    clear($("started"));
    const none = $("no-response");
    clear(none);
    none.hidden = true;
    const stats = $("stats");
    clear(stats);
    stats.removeAttribute("data-done");
  }

  function cell(value) {
    if (value === null || value === undefined) return el("td", { class: "null", text: "" });
    if (typeof value === "object") {
      return el("td", { class: "json" }, el("pre", { text: JSON.stringify(value, null, 1) }));
    }
    return el("td", { text: String(value) });
  }

  const STATUS = ["OK", "aborted", "unknown action", "missing data", "invalid data", "unknown error"];

  function addReply(reply) {
    const body = $("results").tBodies[0];
    const failed = reply.statuscode !== 0;
    const row = el("tr", { class: failed ? "reply failed" : "reply ok", "data-node": reply.sender });
    row.append(
      el("td", { class: "node", text: reply.sender }),
      el("td", { class: "status", title: STATUS[reply.statuscode] || "", text: String(reply.statuscode) }),
      el("td", { class: "message", text: reply.statusmsg || "" }),
    );
    const data = reply.data || {};
    for (const [name] of outputs()) row.append(cell(data[name]));
    // Keep the table sorted by node; replace a row the node sent before.
    const existing = [...body.rows].find((r) => r.getAttribute("data-node") === reply.sender);
    if (existing) existing.remove();
    const after = [...body.rows].find((r) => r.getAttribute("data-node").localeCompare(reply.sender) > 0);
    body.insertBefore(row, after || null);
    $("progress").textContent = `${body.rows.length} repl${body.rows.length === 1 ? "y" : "ies"}`;
  }

  function drawStarted(data) {
    const box = $("started");
    clear(box);
    const nodes = data.nodes || [];
    const parts = [`${data.discovered ?? nodes.length} node(s) discovered`];
    if (data.mode) parts.push(`mode: ${data.mode}`);
    if (data.discovery_method) parts.push(`discovery: ${data.discovery_method}`);
    if (typeof data.discovery_time_ms === "number") parts.push(`${data.discovery_time_ms.toFixed(0)} ms`);
    box.append(el("span", { text: parts.join(" · ") }));
    for (const w of data.warnings || []) box.append(el("div", { class: "warning", text: w }));
    if ((data.discovered ?? nodes.length) === 0) {
      box.append(el("div", { class: "warning", text: "No nodes matched: nothing was sent." }));
    }
  }

  function drawAggregates(aggregates) {
    const box = $("aggregates");
    clear(box);
    for (const agg of aggregates || []) {
      const section = el("div", { class: "aggregate", "data-output": agg.output });
      section.append(el("h3", { text: `Summary of ${agg.display_as || agg.output}` }));
      if (Array.isArray(agg.counts)) {
        const total = agg.counts.reduce((s, [, n]) => s + n, 0) || 1;
        const max = agg.counts.reduce((m, [, n]) => Math.max(m, n), 0) || 1;
        for (const [value, count] of agg.counts) {
          const bar = el("div", { class: "bar" });
          bar.style.width = `${((count / max) * 100).toFixed(1)}%`;
          section.append(
            el(
              "div",
              { class: "bar-row", title: `${count} of ${total}` },
              el("span", { class: "bar-label", text: value }),
              el("span", { class: "bar-track" }, bar),
              el("span", { class: "bar-count", text: `${count} (${((count / total) * 100).toFixed(0)}%)` }),
            ),
          );
        }
      } else if (typeof agg.value === "number") {
        section.append(el("div", { class: "agg-value", text: `${agg.function}: ${agg.value}` }));
      } else {
        for (const line of agg.lines || []) section.append(el("div", { class: "agg-line", text: line }));
      }
      box.append(section);
    }
  }

  function drawStats(data) {
    drawAggregates(data.aggregates);
    const s = data.stats || {};
    const missing = s.no_response_from || [];
    const none = $("no-response");
    clear(none);
    if (missing.length) {
      none.hidden = false;
      none.append(el("h3", { text: `No response from ${missing.length} node(s)` }));
      const list = el("ul");
      for (const n of missing) list.append(el("li", { "data-node": n, text: n }));
      none.append(list);
    } else {
      none.hidden = true;
    }
    const stats = $("stats");
    clear(stats);
    const ms = (v) => (typeof v === "number" ? `${v.toFixed(1)} ms` : "—");
    const rows = [
      ["Nodes", s.discovered],
      ["Responded", s.responded],
      ["OK", s.ok],
      ["Failed", s.failed],
      ["No response", missing.length],
      ["Discovery time", ms(s.discovery_time_ms)],
      ["Elapsed", ms(s.elapsed_ms)],
    ];
    if (s.forged) rows.push(["Forged replies dropped", s.forged]);
    const dl = el("dl");
    for (const [k, v] of rows) {
      const dd = el("dd", { text: v === undefined ? "—" : String(v) });
      if (k === "Failed" && v > 0) dd.className = "bad";
      if (k === "No response" && v > 0) dd.className = "bad";
      dl.append(el("dt", { text: k }), dd);
    }
    stats.append(el("h3", { text: "Statistics" }), dl);
    stats.setAttribute("data-done", "true");
    $("progress").textContent = s.failed || missing.length ? "finished with problems" : "finished";
  }

  function handleEvent(event) {
    switch (event.event) {
      case "started":
        drawStarted(event.data || {});
        break;
      case "reply":
        addReply(event.data || {});
        break;
      case "batch": {
        const d = event.data || {};
        $("progress").textContent = `batch ${d.number} of ${d.of} sent`;
        break;
      }
      case "pause": {
        const d = event.data || {};
        $("progress").textContent = `waiting ${d.sleep} s before the next batch`;
        break;
      }
      case "stats":
        drawStats(event.data || {});
        break;
      default:
        break; // keepalive and anything newer
    }
  }

  // ---- running a call ----------------------------------------------------------------

  async function run(ev) {
    if (ev) ev.preventDefault();
    if (!state.action || !state.ddl) return;
    clearAllErrors();
    const body = buildBody();
    if (!body) {
      showError("Fix the marked fields first: nothing was sent.");
      return;
    }
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    resetResults();
    $("run").disabled = true;
    $("cancel").disabled = false;
    $("progress").textContent = "sending…";
    const path = `/agents/${encodeURIComponent(state.ddl.metadata.name)}/actions/${encodeURIComponent(state.action.action)}`;
    try {
      const response = await api(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        let parsed = null;
        try {
          parsed = await response.json();
        } catch (_) {
          /* not JSON */
        }
        const failure = new ApiFailure(response.status, parsed);
        const wrap = fieldWrap(failure.field);
        if (wrap) {
          setFieldError(wrap, failure.message);
          showError(`Refused (${response.status} ${failure.kind || ""}): see the marked field.`);
        } else {
          showError(`Refused (${response.status} ${failure.kind || ""}): ${failure.message}`);
        }
        $("progress").textContent = "";
        return;
      }
      await readStream(response, controller);
    } catch (e) {
      if (e.name === "AbortError") {
        $("progress").textContent = "stopped";
      } else if (!(e instanceof Unauthorized)) {
        showError(`The call failed: ${e.message}`);
        $("progress").textContent = "";
      }
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        $("run").disabled = !state.action;
        $("cancel").disabled = true;
      }
    }
  }

  async function readStream(response, controller) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    const take = (line) => {
      if (!line.trim()) return;
      let event;
      try {
        event = JSON.parse(line);
      } catch (_) {
        return; // a torn or foreign line: skip it
      }
      if (state.controller === controller) handleEvent(event);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        take(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    }
    buffered += decoder.decode();
    take(buffered);
  }

  // ---- wiring ------------------------------------------------------------------------

  function init() {
    const input = $("token");
    input.value = token();
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      login();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      input.value = "";
      loggedOut("not logged in: enter a bearer token");
    });
    $("agent").addEventListener("change", () => {
      sessionStorage.removeItem("mco.action");
      chooseAgent();
    });
    $("action").addEventListener("change", chooseAction);
    $("call").addEventListener("submit", run);
    $("cancel").addEventListener("click", () => {
      if (state.controller) state.controller.abort();
    });
    resetResults();
    login();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
