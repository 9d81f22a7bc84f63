// ShelfSense operator page: one vanilla ES module, no build step, no third-party code.
//
// Safety rule for this file: data from the server is only ever put into the page through
// textContent / text nodes / setAttribute of non-event attributes (see el()). Nothing here uses
// innerHTML, insertAdjacentHTML or document.write, so an EPC or product name containing markup
// shows as text. The server's Content-Security-Policy forbids inline scripts as a second wall.

const POLL_MS = 3000;
const POLL_MAX_MS = 60000; // back-off ceiling when the cloud is slow or failing

// --- translations --------------------------------------------------------------------------------

const MESSAGES = {
  en: {
    app_title: "ShelfSense operations",
    nav_overview: "Overview", nav_alerts: "Alerts", nav_stocktake: "Stocktake", nav_trace: "Item trace",
    nav_proposals: "Restocking", nav_lots: "Lots",
    site: "Site", all_sites: "All sites", language: "Language", logout: "Log out",
    role_viewer: "viewer", role_operator: "operator", role_admin: "admin",
    viewer_note: "Read-only: your role is viewer.",
    login_title: "Log in", login_with_token: "With an API token", login_with_password: "With a password",
    login_token: "API token", login_user: "User name", login_password: "Password", login_submit: "Log in",
    login_failed: "Login failed: {detail}",
    loading: "Loading…", updated: "Updated {time}", not_available: "Not available on this server yet.",
    forbidden: "Your role may not do this.", error: "Error: {detail}", none: "None",
    items_on_hand: "Items on hand", by_location: "By location", location: "Location", count: "Count",
    open_alerts: "Active alerts (open or acknowledged)", edges: "Edges and devices", edge: "Edge", last_seen: "Last seen",
    sync_lag: "Sync lag", acked: "Acknowledged through", events: "Events", devices: "Devices",
    connected: "connected", disconnected: "disconnected", frames_bad: "bad frames", never: "never",
    no_locations: "No items on hand.", no_edges: "No edges registered.",
    status: "Status", status_open: "Open", status_acknowledged: "Acknowledged", status_resolved: "Resolved",
    status_all: "All", status_approved: "Approved", status_rejected: "Rejected", status_exported: "Exported",
    zone: "Zone", kind: "Kind", rule: "Rule", severity: "Severity", peak: "Peak",
    first_breach: "First breach", last_breach: "Last breach", actions: "Actions", details: "Details",
    acknowledge: "Acknowledge", resolve: "Resolve", comment: "Comment", comment_required: "A comment is required.",
    reason: "Reason", cancel: "Cancel", confirm: "Confirm", no_alerts: "No alerts.", alert: "Alert",
    limit: "Limit", limits: "Limits", readings: "Readings", no_readings: "No readings in this window.",
    acknowledged_by: "Acknowledged by", resolved_by: "Resolved by", sensor: "Sensor", back: "Back",
    filter: "Filter", apply: "Apply",
    latest_runs: "Latest run per location", book: "Book", seen: "Seen", read_rate: "Read rate",
    confidence: "Confidence", run_at: "Run at", missing: "Missing", unexpected: "Unexpected",
    misplaced: "Misplaced", unknown: "Unknown", book_location: "Book location", unseen_windows: "Unseen windows",
    accept: "Accept", dismiss: "Dismiss", run_now: "Reconcile now", no_runs: "No stocktake runs yet.",
    epc: "EPC", gtin: "GTIN", serial: "Serial", prefix_length: "Company prefix digits (optional)",
    search: "Search", or: "or", identity: "Identity", product: "Product", lot: "Lot", expiry: "Expiry",
    current_location: "Current location", gone: "left the site", path: "Path", time: "Time", from: "From",
    to: "To", passages: "Portal passages", direction: "Direction", observations: "Reads", reader: "Reader",
    temperatures: "Temperatures on the way", min: "Min", max: "Max", candidates: "Possible EPCs",
    not_registered: "not registered", unknown_item: "Nothing is known about this EPC.", scheme: "Scheme",
    proposals: "Restocking proposals", quantity: "Quantity", reasoning: "Reasoning", approve: "Approve",
    reject: "Reject", kpis: "KPIs", no_proposals: "No proposals.",
    direction_unknown: "Direction unknown (no stock moved; resolved by the next stocktake)", portal: "Portal",
    reason_one_zone: "seen by one zone only", reason_same_time: "zones peaked together",
    reason_reader_down: "a portal reader was down", inside: "Inside",
    lots: "Lots", effective_expiry: "Effective expiry", remaining: "Remaining shelf life", fefo_rank: "FEFO",
    fefo_order: "FEFO pick order", report: "Report", expiring_within: "Expiring within (days)",
    expired: "expired", no_lots: "No lots.", on_hand: "On hand", mkt: "MKT", kind_label: "Kind",
    supplier_id: "Supplier", location_id: "Location", source_location: "From", amount: "Amount",
    order_by: "Order by", need_by: "Needed by", expected_arrival: "Expected", approved_level: "Approved level",
    created_at: "Created",
  },
  "zh-CN": {
    app_title: "ShelfSense 运营",
    nav_overview: "概览", nav_alerts: "告警", nav_stocktake: "盘点", nav_trace: "物品追溯",
    nav_proposals: "补货", nav_lots: "批次",
    site: "站点", all_sites: "全部站点", language: "语言", logout: "退出登录",
    role_viewer: "查看者", role_operator: "操作员", role_admin: "管理员",
    viewer_note: "只读：您的角色为查看者。",
    login_title: "登录", login_with_token: "使用 API 令牌", login_with_password: "使用密码",
    login_token: "API 令牌", login_user: "用户名", login_password: "密码", login_submit: "登录",
    login_failed: "登录失败：{detail}",
    loading: "加载中…", updated: "更新于 {time}", not_available: "此服务器暂不支持该功能。",
    forbidden: "您的角色无权执行此操作。", error: "错误：{detail}", none: "无",
    items_on_hand: "在库物品", by_location: "按位置", location: "位置", count: "数量",
    open_alerts: "活动告警（未处理或已确认）", edges: "边缘网关与设备", edge: "网关", last_seen: "最近通信",
    sync_lag: "同步延迟", acked: "已确认序号", events: "事件数", devices: "设备",
    connected: "已连接", disconnected: "已断开", frames_bad: "错误帧", never: "从未",
    no_locations: "没有在库物品。", no_edges: "没有已注册的网关。",
    status: "状态", status_open: "未处理", status_acknowledged: "已确认", status_resolved: "已解决",
    status_all: "全部", status_approved: "已批准", status_rejected: "已拒绝", status_exported: "已导出",
    zone: "区域", kind: "类型", rule: "规则", severity: "严重程度", peak: "峰值",
    first_breach: "首次超限", last_breach: "最近超限", actions: "操作", details: "详情",
    acknowledge: "确认", resolve: "解决", comment: "备注", comment_required: "必须填写备注。",
    reason: "原因", cancel: "取消", confirm: "确定", no_alerts: "没有告警。", alert: "告警",
    limit: "限值", limits: "限值", readings: "读数", no_readings: "此时间段内没有读数。",
    acknowledged_by: "确认人", resolved_by: "解决人", sensor: "传感器", back: "返回",
    filter: "筛选", apply: "应用",
    latest_runs: "各位置最近一次盘点", book: "账面", seen: "已读到", read_rate: "读取率",
    confidence: "置信度", run_at: "盘点时间", missing: "缺失", unexpected: "意外出现",
    misplaced: "错放", unknown: "未知", book_location: "账面位置", unseen_windows: "未读到窗口数",
    accept: "接受", dismiss: "忽略", run_now: "立即盘点", no_runs: "尚无盘点记录。",
    epc: "EPC", gtin: "GTIN", serial: "序列号", prefix_length: "厂商识别代码位数（可选）",
    search: "查询", or: "或", identity: "标识", product: "产品", lot: "批次", expiry: "有效期",
    current_location: "当前位置", gone: "已离开站点", path: "路径", time: "时间", from: "从",
    to: "到", passages: "门禁通过记录", direction: "方向", observations: "读取记录", reader: "读写器",
    temperatures: "途经温度", min: "最低", max: "最高", candidates: "可能的 EPC",
    not_registered: "未登记", unknown_item: "没有此 EPC 的任何记录。", scheme: "编码方案",
    proposals: "补货建议", quantity: "数量", reasoning: "依据", approve: "批准",
    reject: "拒绝", kpis: "关键指标", no_proposals: "没有补货建议。",
    direction_unknown: "方向未知（未变动库存；由下一次盘点处理）", portal: "门禁",
    reason_one_zone: "仅一侧读到", reason_same_time: "两侧同时峰值",
    reason_reader_down: "门禁读写器离线", inside: "库内位置",
    lots: "批次", effective_expiry: "有效到期日", remaining: "剩余保质期", fefo_rank: "先到期先出",
    fefo_order: "先到期先出拣货顺序", report: "报告", expiring_within: "到期天数内",
    expired: "已过期", no_lots: "没有批次。", on_hand: "在库", mkt: "平均动力学温度", kind_label: "类型",
    supplier_id: "供应商", location_id: "位置", source_location: "调出位置", amount: "金额",
    order_by: "下单日期", need_by: "需求日期", expected_arrival: "预计到货", approved_level: "已审批级别",
    created_at: "创建时间", sku: "SKU",
  },
};

const LOCALES = [["en", "English"], ["zh-CN", "简体中文"]];

function defaultLocale() {
  const saved = localStorage.getItem("shelfsense.locale");
  if (saved && MESSAGES[saved]) return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  return langs.some((l) => String(l).toLowerCase().startsWith("zh")) ? "zh-CN" : "en";
}

const state = {
  locale: defaultLocale(),
  user: null, role: null, csrf: null,
  site: localStorage.getItem("shelfsense.site") || "",
  sites: [],
  timer: null,
  generation: 0, // bumped on navigation so a slow response of a previous view is dropped
  filters: { alerts: { status: "open", zone: "", kind: "" }, lots: { product: "", days: "" } },
};

function t(key, params) {
  const text = (MESSAGES[state.locale] && MESSAGES[state.locale][key]) ?? MESSAGES.en[key] ?? key;
  return params ? text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? "")) : text;
}

// --- formatting (Intl, for the chosen locale) -----------------------------------------------------

const fmt = {
  date(value) {
    if (!value) return "—";
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return new Intl.DateTimeFormat(state.locale, { dateStyle: "medium", timeStyle: "medium" }).format(d);
  },
  day(value) {
    if (!value) return "—";
    const d = new Date(value.length === 10 ? value + "T00:00:00" : value);
    if (Number.isNaN(d.getTime())) return String(value);
    return new Intl.DateTimeFormat(state.locale, { dateStyle: "medium" }).format(d);
  },
  time(value) {
    return new Intl.DateTimeFormat(state.locale, { timeStyle: "medium" }).format(value);
  },
  num(value, options) {
    if (value === null || value === undefined || value === "") return "—";
    const n = Number(value);
    return Number.isFinite(n) ? new Intl.NumberFormat(state.locale, options).format(n) : String(value);
  },
  temp(value) {
    return fmt.num(value, { style: "unit", unit: "celsius", maximumFractionDigits: 1 });
  },
  measure(value, unit) {
    if (unit === "degC") return fmt.temp(value);
    if (unit === "%RH" || unit === "%") return fmt.num(Number(value) / 100, { style: "percent", maximumFractionDigits: 1 });
    return fmt.num(value, { maximumFractionDigits: 2 }) + (unit ? " " + unit : "");
  },
  percent(ratio) {
    return fmt.num(ratio, { style: "percent", maximumFractionDigits: 1 });
  },
  days(value) {
    return fmt.num(value, { style: "unit", unit: "day", unitDisplay: "long", maximumFractionDigits: 1 });
  },
  ago(value) {
    if (!value) return t("never");
    const seconds = (new Date(value).getTime() - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(state.locale, { numeric: "auto" });
    const abs = Math.abs(seconds);
    if (abs < 60) return rtf.format(Math.round(seconds), "second");
    if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
    return rtf.format(Math.round(seconds / 86400), "day");
  },
  lag(value) {
    if (!value) return "—";
    const seconds = Math.max(0, (Date.now() - new Date(value).getTime()) / 1000);
    if (seconds < 120) return fmt.num(seconds, { style: "unit", unit: "second", maximumFractionDigits: 0 });
    if (seconds < 7200) return fmt.num(seconds / 60, { style: "unit", unit: "minute", maximumFractionDigits: 0 });
    return fmt.num(seconds / 3600, { style: "unit", unit: "hour", maximumFractionDigits: 1 });
  },
};

// --- DOM helpers (text only, never HTML) ----------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key.startsWith("on")) throw new Error("event attributes must be functions");
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function table(headers, rows, attrs) {
  return el("div", { class: "table-wrap" },
    el("table", attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
}

function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", { text: title }), children);
}

function message(kind, text) {
  return el("p", { class: kind, role: kind === "error" ? "alert" : null, text });
}

function button(label, onclick, attrs) {
  return el("button", { type: "button", onclick, ...(attrs || {}) }, label);
}

function canAct() {
  return state.role === "operator" || state.role === "admin";
}

function qs(params) {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) out.set(k, v);
  const s = out.toString();
  return s ? "?" + s : "";
}

// --- API ------------------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options) {
  const method = (options && options.method) || "GET";
  const headers = { Accept: "application/json" };
  let body;
  if (method !== "GET") {
    headers["X-CSRF-Token"] = state.csrf || "";
    headers["Content-Type"] = "application/json";
    body = JSON.stringify((options && options.body) || {});
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin", cache: "no-store" });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && (data.detail || data.code)) || response.statusText;
    if (response.status === 401 && !path.startsWith("/web/login")) {
      state.user = null;
      location.hash = "#/login";
    }
    throw new ApiFailure(response.status, typeof detail === "string" ? detail : JSON.stringify(detail), data && data.code);
  }
  return data;
}

// A view's data call: 404 of the endpoint itself means the feature is not on this server yet.
async function optional(path) {
  try {
    return await api(path);
  } catch (err) {
    // The framework's own 404 (no such route) says "Not Found"; a handler's 404 says what is missing.
    if (err instanceof ApiFailure && err.status === 404 && err.message === "Not Found") {
      return undefined;
    }
    throw err;
  }
}

function failureText(err) {
  if (err instanceof ApiFailure && err.status === 403) return t("forbidden") + " (" + err.message + ")";
  return t("error", { detail: err instanceof Error ? err.message : String(err) });
}

// An action (POST) from a button: show the outcome in the status line, then refresh the view.
async function act(path, body) {
  try {
    await api(path, { method: "POST", body });
    flash("ok", "✓");
  } catch (err) {
    flash("error", failureText(err));
  }
  refresh();
}

function flash(kind, text) {
  const line = document.getElementById("flash");
  if (!line) return;
  line.className = "flash " + kind;
  line.textContent = text;
}

// --- the comment dialog ---------------------------------------------------------------------------

function askComment(title, label, required) {
  const dialog = document.getElementById("prompt");
  const text = document.getElementById("prompt-text");
  const error = document.getElementById("prompt-error");
  document.getElementById("prompt-title").textContent = title;
  document.getElementById("prompt-label").textContent = label;
  document.getElementById("prompt-ok").textContent = t("confirm");
  document.getElementById("prompt-cancel").textContent = t("cancel");
  text.value = "";
  text.required = required;
  error.textContent = "";
  return new Promise((resolve) => {
    const form = document.getElementById("prompt-form");
    const onSubmit = (event) => {
      event.preventDefault();
      const value = text.value.trim();
      if (required && !value) {
        error.textContent = t("comment_required");
        return;
      }
      finish(value);
    };
    const onCancel = () => finish(null);
    function finish(value) {
      form.removeEventListener("submit", onSubmit);
      document.getElementById("prompt-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    }
    form.addEventListener("submit", onSubmit);
    document.getElementById("prompt-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    text.focus();
  });
}

// --- header ---------------------------------------------------------------------------------------

const NAV = [
  ["overview", "nav_overview"], ["alerts", "nav_alerts"], ["stocktake", "nav_stocktake"],
  ["trace", "nav_trace"], ["proposals", "nav_proposals"], ["lots", "nav_lots"], ["whatif", "nav_whatif"],
];

function renderHeader(current) {
  const top = document.getElementById("top");
  document.documentElement.lang = state.locale;
  document.title = t("app_title");
  if (!state.user) {
    top.hidden = true;
    top.replaceChildren();
    return;
  }
  top.hidden = false;
  const siteSelect = el("select", {
    id: "site-select", "aria-label": t("site"),
    onchange: (e) => {
      state.site = e.target.value;
      localStorage.setItem("shelfsense.site", state.site);
      refresh();
    },
  }, el("option", { value: "", text: t("all_sites") }), state.sites.map((s) => el("option", { value: s, text: s })));
  siteSelect.value = state.site;
  const langSelect = el("select", {
    id: "lang-select", "aria-label": t("language"),
    onchange: (e) => {
      state.locale = e.target.value;
      localStorage.setItem("shelfsense.locale", state.locale);
      route();
    },
  }, LOCALES.map(([code, name]) => el("option", { value: code, text: name })));
  langSelect.value = state.locale;
  top.replaceChildren(
    el("div", { class: "brand", text: t("app_title") }),
    el("nav", { class: "nav" }, NAV.map(([name, key]) =>
      el("a", { href: "#/" + name, class: name === current ? "active" : null, "data-view": name, text: t(key) }))),
    el("div", { class: "controls" },
      el("label", {}, el("span", { class: "sr", text: t("site") }), siteSelect),
      el("label", {}, el("span", { class: "sr", text: t("language") }), langSelect),
      el("span", { class: "user", id: "user-badge" }, state.user, " · ", t("role_" + state.role)),
      button(t("logout"), logout, { class: "secondary", id: "logout" })),
  );
}

async function loadSites() {
  try {
    const edges = await api("/api/v1/edges?limit=1000");
    state.sites = [...new Set(edges.items.map((e) => e.site_id))].sort();
  } catch {
    state.sites = [];
  }
}

// --- views ----------------------------------------------------------------------------------------

const views = {};

views.login = {
  polls: false,
  async render() {
    const out = el("div", { class: "login" });
    const error = el("p", { class: "error", role: "alert", id: "login-error" });
    async function submit(event, body) {
      event.preventDefault();
      error.textContent = "";
      try {
        const session = await api("/web/login", { method: "POST", body });
        Object.assign(state, { user: session.user, role: session.role, csrf: session.csrf });
        await loadSites();
        location.hash = "#/overview";
      } catch (err) {
        error.textContent = t("login_failed", { detail: err.message });
      }
    }
    const tokenInput = el("input", { id: "login-token", type: "password", autocomplete: "off", required: true });
    const userInput = el("input", { id: "login-user", autocomplete: "username", required: true });
    const passInput = el("input", { id: "login-password", type: "password", autocomplete: "current-password", required: true });
    const langSelect = el("select", { id: "lang-select", "aria-label": t("language"),
      onchange: (e) => { state.locale = e.target.value; localStorage.setItem("shelfsense.locale", state.locale); route(); } },
    LOCALES.map(([code, name]) => el("option", { value: code, text: name })));
    langSelect.value = state.locale;
    out.append(
      el("h1", { text: t("app_title") }),
      langSelect,
      el("form", { id: "login-password-form", class: "card", onsubmit: (e) => submit(e, { username: userInput.value, password: passInput.value }) },
        el("h2", { text: t("login_with_password") }),
        el("label", { for: "login-user", text: t("login_user") }), userInput,
        el("label", { for: "login-password", text: t("login_password") }), passInput,
        el("button", { type: "submit", text: t("login_submit") })),
      el("form", { id: "login-token-form", class: "card", onsubmit: (e) => submit(e, { token: tokenInput.value }) },
        el("h2", { text: t("login_with_token") }),
        el("label", { for: "login-token", text: t("login_token") }), tokenInput,
        el("button", { type: "submit", text: t("login_submit") })),
      error,
    );
    return out;
  },
};

views.overview = {
  async render() {
    const site = state.site;
    const [stock, alerts, edges] = await Promise.all([
      api("/api/v1/stock" + qs({ site, limit: 1 })),
      api("/api/v1/alerts" + qs({ site, status: "active", limit: 20 })),
      api("/api/v1/edges" + qs({ site, limit: 200 })),
    ]);
    const locations = Object.entries(stock.by_location).sort(([a], [b]) => a.localeCompare(b));
    const stockCard = section(t("items_on_hand"),
      el("p", { class: "big", id: "items-total", text: fmt.num(stock.total) }),
      locations.length
        ? table([t("location"), t("count")], locations.map(([loc, n]) => [loc, fmt.num(n)]), { id: "by-location" })
        : message("muted", t("no_locations")));
    const alertCard = section(t("open_alerts"),
      el("p", { class: "big" + (alerts.total ? " danger" : ""), id: "alerts-open", text: fmt.num(alerts.total) }),
      alerts.items.length ? table(["#", t("zone"), t("rule"), t("status"), t("peak"), t("first_breach")], alerts.items.map((a) => [
        el("a", { href: "#/alerts/" + encodeURIComponent(a.id), text: String(a.id) }), a.site_id + " / " + a.zone,
        a.rule, el("span", { class: "status " + a.status, text: statusLabel(a.status) }),
        alertValue(a, a.peak_value), fmt.ago(a.first_breach_at)]), { id: "overview-alerts" })
        : message("muted", t("no_alerts")));
    const edgeRows = edges.items.map((e) => [
      e.edge_id, e.site_id, fmt.ago(e.last_seen),
      el("span", { class: "lag", text: fmt.lag(e.last_seen) }),
      fmt.num(e.acked_through), fmt.num(e.events_received),
      el("ul", { class: "devices" }, e.devices.map((d) => el("li", {},
        el("span", { class: "dot " + (d.connected ? "up" : "down"), title: d.connected ? t("connected") : t("disconnected") }),
        d.device_id, " ", el("span", { class: "muted", text: (d.connected ? t("connected") : t("disconnected")) +
          " · " + fmt.num(d.frames_bad) + " " + t("frames_bad") + " · " + fmt.ago(d.last_frame_at) })))),
    ]);
    const edgeCard = section(t("edges"), edgeRows.length
      ? table([t("edge"), t("site"), t("last_seen"), t("sync_lag"), t("acked"), t("events"), t("devices")], edgeRows, { id: "edges" })
      : message("muted", t("no_edges")));
    edgeCard.classList.add("wide");
    return el("div", { class: "grid" }, stockCard, alertCard, edgeCard);
  },
};

function statusLabel(status) {
  return t("status_" + status) === "status_" + status ? status : t("status_" + status);
}

function alertList(items) {
  const rows = items.map((a) => {
    const actions = [el("a", { href: "#/alerts/" + encodeURIComponent(a.id), text: t("details") })];
    if (canAct() && a.status === "open") actions.push(button(t("acknowledge"), () => acknowledge(a), { class: "ack", "data-alert": a.id }));
    if (canAct() && a.status !== "resolved") actions.push(button(t("resolve"), () => resolveAlert(a), { class: "secondary", "data-alert": a.id }));
    return [
      String(a.id), a.site_id, a.zone, a.kind ? a.kind + " · " + a.rule : a.rule,
      el("span", { class: "badge " + (a.severity || "warning"), text: a.severity || "—" }),
      el("span", { class: "status " + a.status, text: statusLabel(a.status) }),
      alertValue(a, a.peak_value), fmt.date(a.first_breach_at), fmt.date(a.last_breach_at),
      el("div", { class: "actions" }, actions),
    ];
  });
  const wrap = table([
    "#", t("site"), t("zone"), t("rule"), t("severity"), t("status"), t("peak"), t("first_breach"),
    t("last_breach"), t("actions"),
  ], rows, { class: "alerts", id: "alert-table" });
  labelCells(wrap);
  return wrap;
}

// Each cell gets its column header as data-label: narrow screens show rows as labelled cards.
function labelCells(wrap) {
  const headers = [...wrap.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of wrap.querySelectorAll("tbody tr")) {
    [...tr.children].forEach((td, i) => td.setAttribute("data-label", headers[i] || ""));
  }
}

function alertValue(alert, value) {
  // Expiry alerts (kind expiry_soon / expired_on_hand) carry the days left to the effective expiry.
  // Dead stock alerts carry the days without outbound.
  if (/^(expir|dead_stock)/.test(String(alert.kind || "")) || /^(expir|dead_stock)/.test(String(alert.rule))) return fmt.days(value);
  return String(alert.rule).includes("humidity") ? fmt.measure(value, "%RH") : fmt.temp(value);
}

async function acknowledge(alert) {
  const comment = await askComment(t("acknowledge") + " #" + alert.id, t("comment"), true);
  if (comment !== null) await act(`/api/v1/alerts/${encodeURIComponent(alert.id)}/acknowledge`, { comment });
}

async function resolveAlert(alert) {
  const reason = await askComment(t("resolve") + " #" + alert.id, t("reason"), true);
  if (reason !== null) await act(`/api/v1/alerts/${encodeURIComponent(alert.id)}/resolve`, { reason });
}

views.alerts = {
  toolbar() {
    const f = state.filters.alerts;
    const status = el("select", { id: "alert-status", "aria-label": t("status") },
      ["open", "acknowledged", "resolved", "all"].map((s) => el("option", { value: s, text: t("status_" + s) })));
    status.value = f.status;
    const zone = el("input", { id: "alert-zone", placeholder: t("zone"), value: f.zone, "aria-label": t("zone") });
    const kind = el("input", { id: "alert-kind", placeholder: t("kind"), value: f.kind, "aria-label": t("kind") });
    return el("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      Object.assign(f, { status: status.value, zone: zone.value.trim(), kind: kind.value.trim() });
      refresh();
    } }, status, zone, kind, el("button", { type: "submit", text: t("apply") }));
  },
  async render() {
    const f = state.filters.alerts;
    const page = await api("/api/v1/alerts" + qs({ site: state.site, status: f.status, zone: f.zone, kind: f.kind, limit: 200 }));
    return section(t("nav_alerts") + " (" + fmt.num(page.total) + ")",
      page.items.length ? alertList(page.items) : message("muted", t("no_alerts")));
  },
};

views.alert = {
  async render(id) {
    let detail = await optional(`/api/v1/alerts/${encodeURIComponent(id)}`);
    let readings = [];
    let limits = {};
    if (detail === undefined) {
      // No detail endpoint here: find the alert in the list and read its sensor around the breach.
      const all = await api("/api/v1/alerts" + qs({ status: "all", limit: 500 }));
      detail = all.items.find((a) => String(a.id) === String(id));
      if (!detail) return message("error", t("not_available"));
    }
    const quantity = String(detail.rule).includes("humidity") ? "humidity" : "temperature";
    readings = (detail.readings || []).filter((r) => !r.quantity || r.quantity === quantity);
    limits = normaliseLimits(detail, quantity);
    if (!detail.readings && detail.sensor_id) {
      const since = new Date(new Date(detail.first_breach_at).getTime() - 30 * 60000).toISOString();
      const until = new Date(new Date(detail.resolved_at || detail.last_breach_at).getTime() + 30 * 60000).toISOString();
      const page = await api(`/api/v1/sensors/${encodeURIComponent(detail.sensor_id)}/readings` +
        qs({ site: detail.site_id, quantity, since, until, limit: 1000 }));
      readings = page.items;
    }
    const facts = [
      [t("status"), statusLabel(detail.status)], [t("site"), detail.site_id], [t("zone"), detail.zone],
      [t("rule"), detail.rule], [t("severity"), detail.severity || "—"], [t("sensor"), detail.sensor_id || "—"],
      [t("peak"), alertValue(detail, detail.peak_value)], [t("first_breach"), fmt.date(detail.first_breach_at)],
      [t("last_breach"), fmt.date(detail.last_breach_at)],
    ];
    if (detail.acknowledged_by) facts.push([t("acknowledged_by"), detail.acknowledged_by + ": " + (detail.ack_comment || "")]);
    if (detail.resolved_by) facts.push([t("resolved_by"), detail.resolved_by + ": " + (detail.resolve_reason || "")]);
    const actions = [];
    if (canAct() && detail.status === "open") actions.push(button(t("acknowledge"), () => acknowledge(detail), { class: "ack" }));
    if (canAct() && detail.status !== "resolved") actions.push(button(t("resolve"), () => resolveAlert(detail), { class: "secondary" }));
    return el("div", { class: "grid" },
      section(t("alert") + " #" + detail.id, el("a", { href: "#/alerts", text: "← " + t("back") }), keyValues(facts),
        el("div", { class: "actions" }, actions)),
      Object.assign(section(t("readings"), readings.length
        ? lineChart(readings, limits, quantity === "humidity" ? "%RH" : "degC") : message("muted", t("no_readings"))),
        { className: "card wide" }));
  },
};

function normaliseLimits(detail, quantity) {
  const src = detail.limits || {};
  const pick = (...names) => {
    for (const n of names) {
      const v = src[n] ?? detail[n];
      if (v !== undefined && v !== null && Number.isFinite(Number(v))) return Number(v);
    }
    return null;
  };
  const out = quantity === "humidity"
    ? { min: null, max: pick("max_humidity") }
    : { min: pick("min", "min_temp_c", "lower"), max: pick("max", "max_temp_c", "upper") };
  if (out.min === null && out.max === null && detail.limit !== null && detail.limit !== undefined) {
    if (String(detail.rule).startsWith("min")) out.min = Number(detail.limit);
    else out.max = Number(detail.limit);
  }
  return out;
}

function keyValues(pairs) {
  return el("dl", { class: "kv" }, pairs.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

// An inline SVG line chart of (time, value) readings with the limits drawn as dashed lines.
function lineChart(readings, limits, unit) {
  const label = (v) => fmt.measure(v, unit);
  const W = 720, H = 260, L = 64, R = 12, T = 12, B = 36;
  const points = readings
    .map((r) => ({ x: new Date(r.time || r.at).getTime(), y: Number(r.value) }))
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
    .sort((a, b) => a.x - b.x);
  const ys = points.map((p) => p.y).concat([limits.min, limits.max].filter((v) => v !== null));
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.1;
  y0 -= pad; y1 += pad;
  const x0 = points[0].x, x1 = points.length > 1 ? points[points.length - 1].x : x0 + 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", id: "alert-chart",
    "aria-label": t("readings") });
  chart.append(svg("title", { text: t("readings") }));
  const step = niceStep((y1 - y0) / 4);
  for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: "grid-line" }),
      svg("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end", class: "tick", text: label(v) }));
  }
  const timeFmt = new Intl.DateTimeFormat(state.locale, { hour: "2-digit", minute: "2-digit" });
  for (let i = 0; i <= 3; i++) {
    const x = x0 + ((x1 - x0) * i) / 3;
    chart.append(svg("text", { x: sx(x), y: H - 12, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle",
      class: "tick", text: timeFmt.format(new Date(x)) }));
  }
  for (const [name, value] of [["max", limits.max], ["min", limits.min]]) {
    if (value === null) continue;
    chart.append(svg("line", { x1: L, x2: W - R, y1: sy(value), y2: sy(value), class: "limit " + name, "data-limit": name }),
      svg("text", { x: W - R - 4, y: sy(value) - 4, "text-anchor": "end", class: "limit-label " + name, text: t("limit") + " " + label(value) }));
  }
  chart.append(svg("polyline", { points: points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" "), class: "series" }));
  for (const p of points) {
    const out = (limits.max !== null && p.y > limits.max) || (limits.min !== null && p.y < limits.min);
    if (out) chart.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 3, class: "breach" }));
  }
  return chart;
}

// A round tick step (1, 2, 2.5 or 5 times a power of ten) near ``raw``.
function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return power * (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 2.5 ? 2.5 : unit <= 5 ? 5 : 10);
}

views.stocktake = {
  async render() {
    const site = state.site;
    const [runs, discrepancies, unknownPassages] = await Promise.all([
      api("/api/v1/stocktakes" + qs({ site, limit: 50 })),
      api("/api/v1/stocktakes/discrepancies" + qs({ site, status: "open", limit: 500 })),
      api("/api/v1/passages" + qs({ site, unresolved: "true", limit: 500 })),
    ]);
    const latest = new Map();
    for (const run of runs.items) for (const loc of run.locations) {
      const key = run.site_id + "/" + loc.location;
      if (!latest.has(key)) latest.set(key, { run, loc });
    }
    const runRows = [...latest.values()].map(({ run, loc }) => [
      loc.location, run.site_id, loc.status, fmt.num(loc.book_count), fmt.num(loc.seen_count),
      loc.read_rate === null ? "—" : fmt.percent(loc.read_rate),
      loc.confidence === null ? "—" : fmt.percent(loc.confidence), fmt.date(run.finished_at || run.started_at),
    ]);
    const parts = [];
    const header = section(t("latest_runs"),
      canAct() ? button(t("run_now"), () => act("/api/v1/stocktakes/run"), { id: "run-stocktake" }) : null,
      runRows.length ? table([t("location"), t("site"), t("status"), t("book"), t("seen"), t("read_rate"),
        t("confidence"), t("run_at")], runRows, { id: "stocktake-locations" }) : message("muted", t("no_runs")));
    header.classList.add("wide");
    parts.push(header);
    for (const kind of ["missing", "unexpected", "misplaced", "unknown"]) {
      const items = discrepancies.items.filter((d) => d.kind === kind);
      if (!items.length && kind === "unknown") continue;
      const rows = items.map((d) => [
        el("a", { href: "#/trace/" + encodeURIComponent(d.epc), class: "mono", text: d.epc }),
        d.location, d.book_location || "—", fmt.num(d.unseen_windows),
        canAct() ? el("div", { class: "actions" },
          button(t("accept"), () => act(`/api/v1/stocktakes/discrepancies/${d.id}/accept`), { "data-discrepancy": d.id }),
          button(t("dismiss"), () => act(`/api/v1/stocktakes/discrepancies/${d.id}/dismiss`), { class: "secondary" })) : "",
      ]);
      const card = section(t(kind) + " (" + fmt.num(items.length) + ")", rows.length
        ? table([t("epc"), t("location"), t("book_location"), t("unseen_windows"), t("actions")], rows, { "data-kind": kind })
        : message("muted", t("none")));
      card.classList.add("wide");
      parts.push(card);
    }
    parts.push(unknownPassageCard(unknownPassages));
    return el("div", { class: "grid" }, parts);
  },
};

// Passages the edge could not give a direction (a zone missed, a reader down): flagged, never guessed.
function unknownPassageCard(page) {
  const rows = page.items.map((p) => [
    el("a", { href: "#/trace/" + encodeURIComponent(p.epc), class: "mono", text: p.epc }),
    p.portal, t("reason_" + p.unknown_reason), fmt.date(p.at), p.inside_location || "—",
  ]);
  const card = section(t("direction_unknown") + " (" + fmt.num(page.total) + ")", rows.length
    ? table([t("epc"), t("portal"), t("reason"), t("time"), t("inside")], rows, { id: "unknown-passages" })
    : message("muted", t("none")));
  card.classList.add("wide");
  return card;
}

views.trace = {
  polls: false,
  toolbar(epc) {
    const epcInput = el("input", { id: "trace-epc", class: "mono", placeholder: t("epc"), value: epc || "", "aria-label": t("epc"), maxlength: 124 });
    const gtin = el("input", { id: "trace-gtin", placeholder: t("gtin"), inputmode: "numeric", "aria-label": t("gtin"), maxlength: 14 });
    const serial = el("input", { id: "trace-serial", placeholder: t("serial"), inputmode: "numeric", "aria-label": t("serial"), maxlength: 12 });
    const prefix = el("input", { id: "trace-prefix", placeholder: t("prefix_length"), inputmode: "numeric", "aria-label": t("prefix_length"), maxlength: 2 });
    const out = el("div", { id: "trace-candidates" });
    return el("div", {},
      el("form", { class: "toolbar", id: "trace-epc-form", onsubmit: (e) => {
        e.preventDefault();
        const v = epcInput.value.trim();
        if (v) location.hash = "#/trace/" + encodeURIComponent(v);
      } }, epcInput, el("button", { type: "submit", text: t("search") })),
      el("form", { class: "toolbar", id: "trace-gtin-form", onsubmit: async (e) => {
        e.preventDefault();
        out.replaceChildren();
        try {
          const r = await api("/web/api/sgtin" + qs({ gtin: gtin.value.trim(), serial: serial.value.trim(), prefix_length: prefix.value.trim() }));
          const pick = r.known[0] || (r.candidates.length === 1 ? r.candidates[0] : null);
          if (pick) location.hash = "#/trace/" + encodeURIComponent(pick);
          else out.append(el("p", { text: t("candidates") }), el("ul", {}, r.candidates.map((c) =>
            el("li", {}, el("a", { href: "#/trace/" + c, class: "mono", text: c })))));
        } catch (err) {
          out.append(message("error", failureText(err)));
        }
      } }, el("span", { text: t("or") }), gtin, serial, prefix, el("button", { type: "submit", text: t("search") })),
      out);
  },
  async render(epc) {
    if (!epc) return el("div");
    const [identity, history] = await Promise.all([
      api(`/web/api/items/${encodeURIComponent(epc)}/identity`),
      api(`/api/v1/items/${encodeURIComponent(epc)}`),
    ]);
    const reg = identity.registered;
    const facts = [
      [t("epc"), el("span", { class: "mono", id: "trace-epc-value", text: identity.epc })],
      [t("scheme"), identity.uri],
      [t("gtin"), identity.gtin || "—"], [t("serial"), identity.serial || "—"],
      [t("product"), el("span", { id: "trace-product", text: reg ? `${reg.name || ""} (${reg.sku})` : t("not_registered") })],
      [t("lot"), reg && reg.lot_code ? reg.lot_code : "—"], [t("expiry"), reg ? fmt.day(reg.expiry) : "—"],
      [t("current_location"), el("span", { id: "trace-location", text: history.stock.length
        ? history.stock.map((s) => s.site_id + " / " + (s.present ? s.location || "—" : t("gone"))).join(", ") : "—" })],
    ];
    const movements = [...history.movements].reverse();
    const parts = [section(t("identity"), keyValues(facts))];
    if (!history.stock.length && !history.movements.length && !history.observations.length) {
      parts.push(section(t("path"), message("muted", t("unknown_item"))));
      return el("div", { class: "grid" }, parts);
    }
    parts.push(section(t("path"), table([t("time"), t("from"), t("to"), t("reason")],
      movements.map((m) => [fmt.date(m.at), m.from_location || "—", m.to_location || "—", m.reason]), { id: "trace-path" })));
    parts.push(section(t("temperatures"), await stayTemperatures(movements)));
    parts.push(section(t("passages"), table([t("time"), t("edge"), t("direction"), t("location")],
      history.passages.map((p) => [fmt.date(p.at), p.portal, p.direction, p.inside_location || "—"]))));
    parts.push(section(t("observations"), table([t("time"), t("reader"), t("location"), t("count")],
      history.observations.slice(0, 20).map((o) => [fmt.date(o.last_seen), o.reader, o.location || "—", fmt.num(o.count)]))));
    return el("div", { class: "grid" }, parts);
  },
};

// Temperatures during each stay: the readings of sensors whose zone is the location stayed in.
async function stayTemperatures(movements) {
  const stays = movements.filter((m) => m.to_location).map((m, i) => ({
    site: m.site_id, location: m.to_location, from: m.at,
    until: (movements[i + 1] && movements[i + 1].at) || new Date().toISOString(),
  })).slice(-10);
  if (!stays.length) return message("muted", t("none"));
  const sensors = await api("/api/v1/sensors" + qs({ limit: 1000 }));
  const rows = [];
  for (const stay of stays) {
    const probes = sensors.items.filter((s) => s.quantity === "temperature" && s.site_id === stay.site && s.zone === stay.location);
    let values = [];
    for (const probe of probes) {
      const page = await api(`/api/v1/sensors/${encodeURIComponent(probe.sensor_id)}/readings` +
        qs({ site: stay.site, quantity: "temperature", since: stay.from, until: stay.until, limit: 1000 }));
      values = values.concat(page.items.map((r) => r.value));
    }
    rows.push([stay.location, fmt.date(stay.from), values.length ? fmt.temp(Math.min(...values)) : "—",
      values.length ? fmt.temp(Math.max(...values)) : "—", fmt.num(values.length)]);
  }
  return table([t("location"), t("from"), t("min"), t("max"), t("readings")], rows, { id: "trace-temps" });
}

// Any JSON value as text (objects as nested key/value lists): for reasoning and KPIs whose exact
// shape belongs to the restocking service.
function renderValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return fmt.num(value, { maximumFractionDigits: 3 });
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) {
    const flat = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.values(v).every((x) => x === null || typeof x !== "object");
    if (value.length && value.every(flat)) {
      const keys = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return table(keys, value.map((v) => keys.map((k) => renderValue(v[k]))));
    }
    return el("ul", { class: "plain" }, value.map((v) => el("li", {}, renderValue(v))));
  }
  return keyValues(Object.entries(value).map(([k, v]) => [k, renderValue(v)]));
}

const PROPOSAL_FIELDS = ["kind", "sku", "location_id", "source_location", "supplier_id", "quantity", "amount",
  "order_by", "need_by", "expected_arrival", "status", "approved_level", "created_at"];

views.proposals = {
  async render() {
    const site = state.site;
    const [proposals, kpis] = await Promise.all([
      optional("/api/v1/proposals" + qs({ site, limit: 100 })),
      optional("/api/v1/kpis" + qs({ site })),
    ]);
    const parts = [];
    if (proposals === undefined) parts.push(section(t("proposals"), message("muted", t("not_available"))));
    else {
      const items = Array.isArray(proposals) ? proposals : proposals.items || [];
      parts.push(section(t("proposals"), items.length ? el("div", { class: "proposals", id: "proposal-list" }, items.map(proposalCard))
        : message("muted", t("no_proposals"))));
    }
    parts.push(section(t("kpis"), kpis === undefined ? message("muted", t("not_available")) : el("div", { id: "kpis" }, kpis && kpis.totals ? kpiTable(kpis) : renderValue(kpis))));
    parts.forEach((part) => part.classList.add("wide"));
    return el("div", { class: "grid" }, parts);
  },
};

function proposalValue(key, value) {
  if (key.endsWith("_at")) return fmt.date(value);
  if (["order_by", "need_by", "expected_arrival"].includes(key)) return fmt.day(value);
  if (key === "status") return statusLabel(value);
  if (key === "kind" && t("kind_" + value) !== "kind_" + value) return t("kind_" + value);
  if (key === "amount") return fmt.num(value, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return renderValue(value);
}

function proposalCard(p) {
  const facts = PROPOSAL_FIELDS.filter((k) => p[k] !== undefined && p[k] !== null).map((k) =>
    [t(k) !== k ? t(k) : k, proposalValue(k, p[k])]);
  const pending = !["approved", "rejected", "exported", "cancelled", "expired"].includes(p.status);
  return el("article", { class: "proposal", "data-proposal": p.id },
    el("h3", { text: "#" + p.id }),
    keyValues(facts),
    el("h4", { text: t("reasoning") }),
    el("div", { class: "reasoning" }, reasoningText(p.reasoning, p) ?? renderValue(p.reasoning ?? p.reason ?? p.explanation)),
    canAct() && pending ? el("div", { class: "actions" },
      button(t("approve"), async () => {
        const comment = await askComment(t("approve") + " #" + p.id, t("comment"), false);
        if (comment !== null) await act(`/api/v1/proposals/${encodeURIComponent(p.id)}/approve`, { comment });
      }, { class: "approve" }),
      button(t("reject"), async () => {
        const comment = await askComment(t("reject") + " #" + p.id, t("comment"), true);
        if (comment !== null) await act(`/api/v1/proposals/${encodeURIComponent(p.id)}/reject`, { comment });
      }, { class: "secondary" })) : null);
}

views.lots = {
  toolbar() {
    const f = state.filters.lots;
    const product = el("input", { id: "lot-product", placeholder: t("product"), value: f.product, "aria-label": t("product") });
    const days = el("input", { id: "lot-days", type: "number", min: 0, placeholder: t("expiring_within"), value: f.days, "aria-label": t("expiring_within") });
    return el("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      Object.assign(f, { product: product.value.trim(), days: days.value.trim() });
      refresh();
    } }, product, days, el("button", { type: "submit", text: t("apply") }));
  },
  async render() {
    const f = state.filters.lots;
    const [lots, fefo] = await Promise.all([
      optional("/api/v1/lots" + qs({ site: state.site, product: f.product, expiring_within_days: f.days, limit: 500 })),
      optional("/api/v1/fefo" + qs({ product: f.product, site: state.site })),
    ]);
    if (lots === undefined) return section(t("lots"), message("muted", t("not_available")));
    const items = [...(lots.items || [])].sort((a, b) =>
      String(a.sku).localeCompare(String(b.sku)) || (a.fefo_rank ?? 1e9) - (b.fefo_rank ?? 1e9) ||
      String(effectiveExpiry(a)).localeCompare(String(effectiveExpiry(b))));
    const rows = items.map((lot) => {
      const id = lot.lot_id ?? lot.id ?? lot.lot_code;
      const remaining = lot.remaining_shelf_life_days ?? daysUntil(effectiveExpiry(lot));
      const expired = lot.expired === true || (remaining !== null && remaining < 0);
      const link = (format) => el("a", { href: `/api/v1/lots/${encodeURIComponent(id)}/report?format=${format}`,
        download: `lot-${String(id).replace(/[^\w.-]/g, "_")}.${format}`, "data-format": format, text: format.toUpperCase() });
      return [
        lot.fefo_rank ?? "—", lot.sku || lot.product || "—", lot.lot_code, fmt.day(lot.expiry),
        fmt.day(lot.effective_expiry || lot.expiry),
        el("span", { class: expired ? "danger" : remaining !== null && remaining < 7 ? "warn" : "",
          text: expired ? t("expired") : remaining === null ? "—" : fmt.days(remaining) }),
        lot.on_hand === undefined ? "—" : fmt.num(lot.on_hand),
        (lot.locations || []).map((l) => l.location + " × " + fmt.num(l.quantity)).join(", ") || "—",
        lot.mkt_c === null || lot.mkt_c === undefined ? "—" : fmt.temp(lot.mkt_c),
        el("span", { class: "links" }, link("csv"), " ", link("json"), " ", link("png")),
      ];
    });
    const parts = [section(t("lots"), rows.length ? table([t("fefo_rank"), t("product"), t("lot"), t("expiry"),
      t("effective_expiry"), t("remaining"), t("on_hand"), t("location"), t("mkt"), t("report")], rows, { id: "lot-table" })
      : message("muted", t("no_lots")))];
    parts[0].classList.add("wide");
    if (fefo !== undefined) {
      const products = (fefo && fefo.products) || [];
      parts.push(section(t("fefo_order"), products.length ? products.map((p) => el("div", { class: "fefo" },
        el("h3", { text: p.product }),
        el("ol", {}, p.lots.map((l) => el("li", {}, el("strong", { text: l.lot_code }), " · ",
          fmt.day(l.effective_expiry || l.expiry), " · ", fmt.num(l.on_hand), " · ",
          (l.locations || []).map((x) => x.location).join(", ")))))) : message("muted", t("none"))));
    }
    return el("div", { class: "grid" }, parts);
  },
};

function effectiveExpiry(lot) {
  return lot.effective_expiry || lot.expiry || "9999-12-31";
}

function daysUntil(day) {
  if (!day || day.startsWith("9999")) return null;
  const end = new Date(day.length === 10 ? day + "T00:00:00" : day).getTime();
  return Math.floor((end - Date.now()) / 86400000);
}

// --- what-if (issue 17): self-contained; its texts, view and chart live in this block --------------

Object.assign(MESSAGES.en, {
  nav_whatif: "What-if", whatif_scenario: "Scenario (TOML)", whatif_run: "Run simulation", whatif_png: "Download PNG",
  whatif_running: "Simulating…", whatif_results: "Results", whatif_chart: "Inventory value and stock-outs per day",
  whatif_help: "Shocks and policies to compare; see docs/whatif.md. Dashed lines: baseline; solid: with the shock.",
  whatif_operator_only: "Running a simulation needs the operator role.",
  wi_scenario: "Scenario", wi_policy: "Policy", wi_fill: "Fill rate (95 % interval)", wi_csl: "Cycle service level",
  wi_out: "Stock-out days", wi_lost: "Lost units", wi_inv: "Avg. inventory value", wi_turns: "Turnover",
  wi_expired: "Expired units", wi_spend: "Spend", wi_value: "inventory value", wi_stockouts: "items out of stock",
});
Object.assign(MESSAGES["zh-CN"], {
  nav_whatif: "假设分析", whatif_scenario: "情景 (TOML)", whatif_run: "运行模拟", whatif_png: "下载 PNG",
  whatif_running: "模拟中…", whatif_results: "结果", whatif_chart: "每日库存价值与缺货",
  whatif_help: "要比较的冲击与策略，见 docs/whatif.md。虚线：基线；实线：冲击。",
  whatif_operator_only: "运行模拟需要操作员角色。",
  wi_scenario: "情景", wi_policy: "策略", wi_fill: "满足率 (95% 区间)", wi_csl: "周期服务水平",
  wi_out: "缺货天数", wi_lost: "损失件数", wi_inv: "平均库存价值", wi_turns: "周转率",
  wi_expired: "过期件数", wi_spend: "采购支出", wi_value: "库存价值", wi_stockouts: "缺货品项",
});

const whatif = { text: null, report: null, error: null, running: false };

function whatifTemplate() {
  return [
    'name = "Demand +40 % for four weeks"',
    `site_id = "${state.site || "site-1"}"`,
    "", "[simulation]", "days = 90", "runs = 100", "seed = 1",
    "", "[[policies]]", 'name = "current"',
    "", "[[policies]]", 'name = "sl-99"', "service_level = 0.99",
    "", "[[shocks]]", 'name = "spike"', 'kind = "demand"', "factor = 1.4", "start = 10", "days = 28", "",
  ].join("\n");
}

async function whatifPost(path, text) {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin", cache: "no-store", body: text,
    headers: { "Content-Type": "application/toml", "X-CSRF-Token": state.csrf || "", Accept: "application/json, image/png" },
  });
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    throw new ApiFailure(response.status, (data && (data.detail || data.code)) || response.statusText, data && data.code);
  }
  return response;
}

async function whatifRun() {
  whatif.running = true;
  whatif.error = null;
  refresh();
  try {
    whatif.report = await (await whatifPost("/api/v1/whatif", whatif.text)).json();
  } catch (err) {
    whatif.error = failureText(err);
  } finally {
    whatif.running = false;
    refresh();
  }
}

async function whatifDownload() {
  try {
    const blob = await (await whatifPost("/api/v1/whatif/png", whatif.text)).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: "whatif.png" });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (err) {
    flash("error", failureText(err));
  }
}

function whatifChart(report) {
  const W = 720, H = 150, PAD = 44;
  const rows = report.scenarios;
  const policies = [...new Set(rows.map((r) => r.policy))];
  const colours = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"];
  const panel = (key, label) => {
    const series = rows.map((r) => r.daily[key]);
    const top = Math.max(1e-9, ...series.flat());
    const days = Math.max(1, ...series.map((s) => s.length - 1));
    const x = (i) => PAD + (i / days) * (W - PAD - 8);
    const y = (v) => H - 18 - (v / top) * (H - 30);
    return svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, "data-series": key },
      svg("line", { class: "grid-line", x1: PAD, x2: W - 8, y1: y(0), y2: y(0) }),
      svg("text", { class: "tick", x: 2, y: 14, text: fmt.num(top, { maximumFractionDigits: 1 }) }),
      svg("text", { class: "tick", x: 2, y: H - 20, text: "0" }),
      svg("text", { class: "tick", x: W / 2, y: H - 2, text: label }),
      rows.map((r, n) => {
        const line = svg("polyline", { class: "series", "data-row": `${r.name}/${r.policy}`,
          points: series[n].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") });
        // CSSOM, not a style attribute: the page's Content-Security-Policy forbids inline styles.
        line.style.stroke = colours[policies.indexOf(r.policy) % colours.length];
        if (r.name === "baseline") line.style.strokeDasharray = "6 4";
        return line;
      }));
  };
  const legend = el("p", { class: "muted" }, policies.map((p, i) => {
    const key = el("span", { class: "legend", text: "■ " + p + "  " });
    key.style.color = colours[i % colours.length];
    return key;
  }));
  return el("div", { id: "whatif-chart" }, panel("inventory_value", t("wi_value")), panel("stockouts", t("wi_stockouts")), legend);
}

function whatifTable(report) {
  const n = (v, d) => fmt.num(v, { maximumFractionDigits: d });
  return table(
    [t("wi_scenario"), t("wi_policy"), t("wi_fill"), t("wi_csl"), t("wi_out"), t("wi_lost"), t("wi_inv"), t("wi_turns"), t("wi_expired"), t("wi_spend")],
    report.scenarios.map((r) => [r.name, r.policy, `${n(r.fill_rate, 3)} [${n(r.ci95.fill_rate[0], 3)}, ${n(r.ci95.fill_rate[1], 3)}]`,
      n(r.cycle_service_level, 3), n(r.stockout_days, 1), n(r.lost_units, 0), n(r.avg_inventory_value, 0),
      n(r.turnover, 1), n(r.expired_units, 0), n(r.spend, 0)]),
    { id: "whatif-table" });
}

views.whatif = {
  polls: false,
  async render() {
    if (whatif.text === null) whatif.text = whatifTemplate();
    const editor = el("textarea", { id: "whatif-text", rows: 18, spellcheck: "false", "aria-label": t("whatif_scenario"),
      oninput: (e) => { whatif.text = e.target.value; } });
    editor.value = whatif.text;
    const actions = canAct()
      ? el("div", { class: "actions" },
        button(whatif.running ? t("whatif_running") : t("whatif_run"), whatifRun, { id: "whatif-run", disabled: whatif.running }),
        whatif.report ? button(t("whatif_png"), whatifDownload, { id: "whatif-png", class: "secondary" }) : null)
      : message("muted", t("whatif_operator_only"));
    const parts = [section(t("whatif_scenario"), message("muted", t("whatif_help")), editor, actions,
      whatif.error ? el("p", { class: "error", role: "alert", id: "whatif-error", text: whatif.error }) : null)];
    if (whatif.report) {
      parts.push(section(t("whatif_results"), whatifTable(whatif.report)));
      parts.push(section(t("whatif_chart"), whatifChart(whatif.report)));
    }
    parts.forEach((p) => p.classList.add("wide"));
    return el("div", { class: "grid" }, parts);
  },
};

// --- live sensors, stock, KPI table, proposal reasoning (issue 15): self-contained block ----------

Object.assign(MESSAGES.en, {
  nav_sensors: "Sensors", nav_stock: "Stock", sku: "SKU", kpi_note: "Notes",
  kind_purchase: "Purchase order", kind_transfer: "Transfer", kind_markdown: "Markdown",
  sensors: "Live sensors", quantity_label: "Quantity", current: "Current", last_reading: "Last reading",
  spark_24h: "Last 24 h", sensor_state: "State", state_ok: "Within limits", state_breach: "Out of limits",
  state_stale: "No recent reading", state_nolimits: "No limits", no_sensors: "No sensors have reported yet.",
  q_temperature: "Temperature", q_humidity: "Humidity",
  stock: "Stock", group_by: "Group by", stock_search: "Search EPC, product, lot or location",
  group_product: "Product", group_lot: "Lot", group_location: "Location", items_in: "Items: {group}",
  updated_at: "Updated", stock_flags: "Flagged by the stocktake", shown_of: "{shown} of {total} shown",
  no_stock: "No items match.", pick_count: "Pick a count to list its items.", unregistered: "(not registered)",
  kpi: "KPI", kpi_value: "Value", kpi_period: "Period", kpi_turnover: "Inventory turnover",
  kpi_turnover_units: "Turnover (units)", kpi_cover: "Days of cover", kpi_fill: "Fill rate",
  kpi_on_time: "On-time delivery", kpi_dead: "Dead stock value", kpi_stockout: "Stock-out days",
  kpi_avg_value: "Average inventory value", kpi_outbound: "Units shipped",
  kpi_per_year: "{value} × per year", kpi_dead_note: "on hand, nothing shipped in the period",
  kpi_orders: "{on_time} of {orders} orders", kpi_by_item: "By product and location",
  period_days: "{since} – {until} ({days} days)", units: "{n} units", per_day: "{n}/day",
  why_replenish: "Forecast {forecast} per day ({method}, σ {std}); safety stock {safety}, reorder point {rop}, order-up-to {max}. Position {position} (on hand {on_hand}, on order {on_order}, in transit {in_transit}) is below the reorder point: {uncovered} needed by {need_by}.",
  why_purchase: "Ordering {quantity}: the need plus {drop} sold until the order date, rounded up to packs of {pack}{moq}. Order by {order_by}, expected {arrival}{late}.",
  why_moq: " and at least the MOQ of {moq}", why_late: " (late: after the need date)",
  why_transfer: "Transfer {quantity} from {source} (surplus {surplus}), {days} days on the way.",
  why_expiry: "Lot {lot} expires {expiry} ({days_left} days): {on_hand} on hand, {sells} sell at {forecast}/day before then, {excess} in excess — {why}.",
});
Object.assign(MESSAGES["zh-CN"], {
  nav_sensors: "传感器", nav_stock: "库存", kpi_note: "说明", kind_purchase: "采购订单", kind_transfer: "调拨", kind_markdown: "降价",
  sensors: "实时传感器", quantity_label: "测量量", current: "当前值", last_reading: "最近读数",
  spark_24h: "最近 24 小时", sensor_state: "状态", state_ok: "在限值内", state_breach: "超出限值",
  state_stale: "近期无读数", state_nolimits: "无限值", no_sensors: "尚无传感器上报。",
  q_temperature: "温度", q_humidity: "湿度",
  stock: "库存", group_by: "分组", stock_search: "搜索 EPC、产品、批次或位置",
  group_product: "产品", group_lot: "批次", group_location: "位置", items_in: "物品：{group}",
  updated_at: "更新时间", stock_flags: "盘点标记", shown_of: "显示 {shown} / 共 {total}",
  no_stock: "没有匹配的物品。", pick_count: "点击数量以列出其物品。", unregistered: "（未登记）",
  kpi: "指标", kpi_value: "数值", kpi_period: "期间", kpi_turnover: "库存周转率",
  kpi_turnover_units: "周转率（件数）", kpi_cover: "可供天数", kpi_fill: "订单满足率",
  kpi_on_time: "准时交货率", kpi_dead: "呆滞库存金额", kpi_stockout: "缺货天数",
  kpi_avg_value: "平均库存金额", kpi_outbound: "出库件数",
  kpi_per_year: "每年 {value} 次", kpi_dead_note: "在库但期间内无出库",
  kpi_orders: "{orders} 单中 {on_time} 单", kpi_by_item: "按产品和位置",
  period_days: "{since} – {until}（{days} 天）", units: "{n} 件", per_day: "每天 {n}",
  why_replenish: "预测每天 {forecast}（{method}，σ {std}）；安全库存 {safety}，再订货点 {rop}，补至 {max}。库存头寸 {position}（在库 {on_hand}，在订 {on_order}，在途 {in_transit}）低于再订货点：需在 {need_by} 前补充 {uncovered}。",
  why_purchase: "订购 {quantity}：需求量加上下单前将售出的 {drop}，按每包 {pack} 向上取整{moq}。请于 {order_by} 前下单，预计 {arrival} 到货{late}。",
  why_moq: "，且不少于最小起订量 {moq}", why_late: "（迟到：晚于需求日期）",
  why_transfer: "从 {source} 调拨 {quantity}（富余 {surplus}），在途 {days} 天。",
  why_expiry: "批次 {lot} 于 {expiry} 到期（剩 {days_left} 天）：在库 {on_hand}，按每天 {forecast} 到期前可售 {sells}，多出 {excess}——{why}。",
});
NAV.splice(1, 0, ["sensors", "nav_sensors"], ["stock", "nav_stock"]);

const SENSOR_STALE_MS = 15 * 60000; // no reading for 15 minutes: the value shown is no longer live
const SPARK_WINDOW_MS = 24 * 3600000;

function sensorLimits(zone, quantity) {
  if (!zone) return { min: null, max: null };
  if (quantity === "humidity") return { min: null, max: zone.max_humidity ?? null };
  return { min: zone.min_temp_c ?? null, max: zone.max_temp_c ?? null };
}

function sensorState(sensor, limits) {
  if (Date.now() - new Date(sensor.last_time).getTime() > SENSOR_STALE_MS) return "stale";
  const v = sensor.last_value;
  if ((limits.max !== null && v > limits.max) || (limits.min !== null && v < limits.min)) return "breach";
  return limits.min === null && limits.max === null ? "nolimits" : "ok";
}

// The last 24 h of each sensor, kept between polls: a poll fetches only readings newer than the
// newest one held (none when the sensor's last_time has not moved), and drops those older than 24 h.
const sparkCache = new Map(); // "site/sensor/quantity" -> readings, oldest first

async function sensorDay(sensor) {
  const key = `${sensor.site_id}/${sensor.sensor_id}/${sensor.quantity}`;
  const cutoff = Date.now() - SPARK_WINDOW_MS;
  let items = (sparkCache.get(key) || []).filter((r) => new Date(r.time).getTime() >= cutoff);
  const newest = items.length ? new Date(items[items.length - 1].time).getTime() : null;
  if (newest === null || new Date(sensor.last_time).getTime() > newest) {
    const since = new Date(newest ?? cutoff).toISOString();
    const base = `/api/v1/sensors/${encodeURIComponent(sensor.sensor_id)}/readings`;
    for (let offset = 0, total = 1; offset < total && offset < 5000; offset += 1000) {
      const page = await api(base + qs({ site: sensor.site_id, quantity: sensor.quantity, since, limit: 1000, offset }));
      items = items.concat(page.items.filter((r) => newest === null || new Date(r.time).getTime() > newest));
      total = page.total;
    }
  }
  sparkCache.set(key, items);
  return items;
}

function sparkline(readings, limits, stateName) {
  const W = 160, H = 36, P = 3;
  const pts = readings.map((r) => ({ x: new Date(r.time).getTime(), y: Number(r.value) }))
    .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const spark = svg("svg", { class: "spark " + stateName, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": t("spark_24h"), "data-points": pts.length });
  if (!pts.length) return spark;
  const ys = pts.map((p) => p.y).concat([limits.min, limits.max].filter((v) => v !== null));
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1) { y0 -= 0.5; y1 += 0.5; }
  const x1 = Date.now(), x0 = x1 - SPARK_WINDOW_MS;
  const sx = (x) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const sy = (y) => P + (1 - (y - y0) / (y1 - y0)) * (H - 2 * P);
  const lo = limits.min ?? y0, hi = limits.max ?? y1;
  if (limits.min !== null || limits.max !== null) {
    spark.append(svg("rect", { class: "band", x: P, width: W - 2 * P, y: sy(hi), height: Math.max(0, sy(lo) - sy(hi)) }));
  }
  spark.append(svg("polyline", { class: "line", points: pts.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ") }));
  const last = pts[pts.length - 1];
  spark.append(svg("circle", { class: "last", cx: sx(last.x).toFixed(1), cy: sy(last.y).toFixed(1), r: 2.5 }));
  return spark;
}

function limitText(limits, unit) {
  const f = (v) => fmt.measure(v, unit);
  if (limits.min !== null && limits.max !== null) return f(limits.min) + " – " + f(limits.max);
  if (limits.max !== null) return "≤ " + f(limits.max);
  if (limits.min !== null) return "≥ " + f(limits.min);
  return "—";
}

const STATE_ORDER = { breach: 0, stale: 1, ok: 2, nolimits: 3 };

views.sensors = {
  async render() {
    const site = state.site;
    const [sensors, zones] = await Promise.all([
      api("/api/v1/sensors" + qs({ site, limit: 1000 })),
      optional("/web/api/zones" + qs({ site })),
    ]);
    if (!sensors.items.length) return section(t("sensors"), message("muted", t("no_sensors")));
    const zoneOf = new Map((zones || []).map((z) => [z.site_id + "/" + z.zone, z]));
    const days = await Promise.all(sensors.items.map(sensorDay));
    const groups = new Map();
    sensors.items.forEach((s, i) => {
      const key = s.site_id + "/" + (s.zone || "—");
      const limits = sensorLimits(zoneOf.get(key), s.quantity);
      const row = { s, limits, state: sensorState(s, limits), readings: days[i] };
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(row);
    });
    const cards = [...groups.entries()].map(([key, rows]) => {
      rows.sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.s.sensor_id.localeCompare(b.s.sensor_id));
      const worst = rows[0].state;
      const wrap = table([t("sensor"), t("quantity_label"), t("current"), t("limits"), t("last_reading"), t("spark_24h"), t("sensor_state")],
        rows.map(({ s, limits, state: st, readings }) => [
          s.sensor_id, t("q_" + s.quantity) === "q_" + s.quantity ? s.quantity : t("q_" + s.quantity),
          el("span", { class: "sensor-value " + st, text: fmt.measure(s.last_value, s.unit) }),
          limitText(limits, s.unit),
          el("span", { title: fmt.date(s.last_time), text: fmt.ago(s.last_time) }),
          sparkline(readings, limits, st),
          el("span", { class: "sensor-state " + st, text: t("state_" + st) }),
        ]), { class: "sensors" });
      wrap.querySelectorAll("tbody tr").forEach((tr, i) => {
        tr.className = rows[i].state;
        tr.dataset.sensor = rows[i].s.sensor_id;
        tr.dataset.state = rows[i].state;
      });
      const card = section(key, el("span", { class: "sensor-state " + worst, text: t("state_" + worst) }), wrap);
      card.dataset.zone = key;
      card.classList.add("wide");
      return card;
    });
    cards.sort((a, b) => STATE_ORDER[a.querySelector(".sensor-state").className.split(" ")[1]] -
      STATE_ORDER[b.querySelector(".sensor-state").className.split(" ")[1]]);
    return el("div", { class: "grid", id: "sensor-zones" }, cards);
  },
};

// --- stock ----------------------------------------------------------------------------------------

state.filters.stock = { search: "", group: "location", pick: null };

views.stock = {
  toolbar() {
    const f = state.filters.stock;
    const search = el("input", { id: "stock-search", type: "search", placeholder: t("stock_search"), value: f.search,
      "aria-label": t("stock_search") });
    const group = el("select", { id: "stock-group", "aria-label": t("group_by") },
      ["location", "product", "lot"].map((g) => el("option", { value: g, text: t("group_by") + ": " + t("group_" + g) })));
    group.value = f.group;
    return el("form", { class: "toolbar", onsubmit: (e) => {
      e.preventDefault();
      Object.assign(f, { search: search.value.trim(), group: group.value, pick: null });
      refresh();
    } }, search, group, el("button", { type: "submit", text: t("search") }));
  },
  async render() {
    const site = state.site;
    const f = state.filters.stock;
    const [stock, registered, products, passages, flags] = await Promise.all([
      api("/api/v1/stock" + qs({ site, limit: 1000 })),
      api("/api/v1/items" + qs({ limit: 1000 })),
      api("/api/v1/products" + qs({ limit: 1000 })),
      api("/api/v1/passages" + qs({ site, unresolved: "true", limit: 200 })),
      api("/api/v1/stocktakes/discrepancies" + qs({ site, status: "open", limit: 200 })),
    ]);
    const itemOf = new Map(registered.items.map((i) => [i.epc, i]));
    const nameOf = new Map(products.items.map((p) => [p.sku, p.name]));
    const rows = stock.items.map((s) => {
      const reg = itemOf.get(s.epc);
      const sku = reg ? reg.sku : null;
      return { ...s, sku, lot: reg ? reg.lot_code : null, name: sku ? nameOf.get(sku) || sku : null };
    });
    const needle = f.search.toLowerCase();
    const matches = rows.filter((r) => !needle || [r.epc, r.sku, r.name, r.lot, r.location, r.site_id]
      .some((v) => v && String(v).toLowerCase().includes(needle)));
    const keyOf = (r) => f.group === "product" ? (r.name ? `${r.name} (${r.sku})` : t("unregistered"))
      : f.group === "lot" ? (r.sku ? `${r.sku} / ${r.lot || "—"}` : t("unregistered"))
      : `${r.site_id} / ${r.location || "—"}`;
    const groups = new Map();
    for (const r of matches) groups.set(keyOf(r), [...(groups.get(keyOf(r)) || []), r]);
    const sorted = [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
    const countRows = sorted.map(([key, list]) => [key, button(fmt.num(list.length), () => { f.pick = key; refresh(); },
      { class: "link", "data-group": key })]);
    const note = stock.total > stock.items.length ? message("muted", t("shown_of", { shown: fmt.num(stock.items.length), total: fmt.num(stock.total) })) : null;
    const counts = section(t("stock") + " · " + t("group_" + f.group) + " (" + fmt.num(matches.length) + ")", note,
      countRows.length ? table([t("group_" + f.group), t("count")], countRows, { id: "stock-counts" }) : message("muted", t("no_stock")));
    const picked = f.pick !== null && groups.has(f.pick) ? groups.get(f.pick) : null;
    const list = section(picked ? t("items_in", { group: f.pick }) : t("items_in", { group: "—" }), picked
      ? table([t("epc"), t("product"), t("lot"), t("location"), t("updated_at")], picked.map((r) => [
        el("a", { href: "#/trace/" + encodeURIComponent(r.epc), class: "mono", text: r.epc }),
        r.name || t("unregistered"), r.lot || "—", `${r.site_id} / ${r.location || "—"}`, fmt.ago(r.updated_at)]),
      { id: "stock-items" }) : message("muted", t("pick_count")));
    const flagged = section(t("stock_flags") + " (" + fmt.num(flags.total) + ")", flags.items.length
      ? table([t("kind"), t("epc"), t("location"), t("book_location")], flags.items.map((d) => [t(d.kind),
        el("a", { href: "#/trace/" + encodeURIComponent(d.epc), class: "mono", text: d.epc }), d.location || "—",
        d.book_location || "—"]), { id: "stock-flags" }) : message("muted", t("none")));
    flagged.classList.add("wide");
    return el("div", { class: "grid" }, counts, list, unknownPassageCard(passages), flagged);
  },
};

// --- KPIs as a table ------------------------------------------------------------------------------

function kpiTable(k) {
  const tot = k.totals || {};
  const items = k.items || [];
  const period = t("period_days", { since: fmt.day(k.since), until: fmt.day(k.until), days: fmt.num(k.days) });
  const money = (v) => fmt.num(v, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const yearly = (v) => v === null || v === undefined ? "—" : t("kpi_per_year", { value: fmt.num(v * 365 / k.days, { maximumFractionDigits: 1 }) });
  const dead = items.filter((r) => r.outbound_units === 0 && r.closing_units > 0);
  const deadValue = dead.reduce((sum, r) => sum + r.closing_units * (r.unit_cost || 0), 0);
  const fills = items.map((r) => r.fill_rate).filter((v) => v !== null && v !== undefined);
  const weighted = items.filter((r) => r.fill_rate !== null && r.fill_rate !== undefined);
  const shipped = weighted.reduce((s, r) => s + r.outbound_units, 0);
  const fill = shipped > 0 ? shipped / weighted.reduce((s, r) => s + r.outbound_units / (r.fill_rate || 1), 0)
    : fills.length ? fills.reduce((a, b) => a + b, 0) / fills.length : null;
  const otd = k.on_time_delivery || {};
  const rows = [
    ["turnover", t("kpi_turnover"), tot.turnover === null ? "—" : fmt.num(tot.turnover, { maximumFractionDigits: 2 }) + "×", yearly(tot.turnover)],
    ["cover", t("kpi_cover"), tot.days_of_cover === null ? "—" : fmt.days(tot.days_of_cover), ""],
    ["fill", t("kpi_fill"), fill === null ? "—" : fmt.percent(fill), ""],
    ["on_time", t("kpi_on_time"), otd.rate === null || otd.rate === undefined ? "—" : fmt.percent(otd.rate),
      t("kpi_orders", { on_time: fmt.num(otd.on_time_orders ?? 0), orders: fmt.num(otd.received_orders ?? 0) })],
    ["dead", t("kpi_dead"), money(deadValue), t("kpi_dead_note") + " (" + fmt.num(dead.length) + ")"],
    ["stockout", t("kpi_stockout"), fmt.num(tot.stock_out_days), ""],
    ["avg_value", t("kpi_avg_value"), money(tot.average_inventory_value), t("units", { n: fmt.num(tot.average_inventory_units, { maximumFractionDigits: 1 }) })],
    ["outbound", t("kpi_outbound"), fmt.num(tot.outbound_units), t("per_day", { n: fmt.num(tot.outbound_units / k.days, { maximumFractionDigits: 1 }) })],
  ];
  const summary = table([t("kpi"), t("kpi_value"), t("kpi_note")], rows.map(([, label, value, note]) => [label, value, el("span", { class: "muted", text: note })]), { class: "kpis", id: "kpi-table" });
  summary.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.kpi = rows[i][0];
    tr.children[1].className = "num";
  });
  const perItem = items.length ? table([t("product"), t("location"), t("kpi_turnover_units"), t("kpi_cover"), t("kpi_fill"), t("kpi_stockout")],
    items.map((r) => [r.sku, `${r.site_id} / ${r.location_id}`, fmt.num(r.turnover_units, { maximumFractionDigits: 2 }),
      r.days_of_cover === null ? "—" : fmt.days(r.days_of_cover), r.fill_rate === null ? "—" : fmt.percent(r.fill_rate),
      fmt.num(r.stock_out_days)]), { class: "kpis", id: "kpi-items" }) : null;
  return el("div", {}, el("p", { class: "muted", id: "kpi-period", text: t("kpi_period") + ": " + period }), summary,
    perItem ? el("h3", { text: t("kpi_by_item") }) : null, perItem);
}

// --- proposal reasoning as sentences --------------------------------------------------------------

function reasoningText(r, p) {
  if (!r || typeof r !== "object") return null;
  const n = (v, d) => fmt.num(v, { maximumFractionDigits: d ?? 1 });
  const out = [];
  if (r.reason === "expiring_stock") {
    out.push(t("why_expiry", { lot: r.lot_id, expiry: fmt.day(r.effective_expiry), days_left: n(r.days_left), on_hand: n(r.on_hand, 0),
      sells: n(r.sells_before_expiry), forecast: n(r.forecast_per_day, 2), excess: n(r.excess, 0), why: r.why || "" }));
  } else if (r.reorder_point !== undefined) {
    out.push(t("why_replenish", { forecast: n(r.forecast_per_day, 2), method: r.forecast_method || "—", std: n(r.demand_std, 2),
      safety: n(r.safety_stock), rop: n(r.reorder_point), max: n(r.order_up_to), position: n(r.position),
      on_hand: n(r.on_hand, 0), on_order: n(r.on_order, 0), in_transit: n(r.in_transit, 0),
      uncovered: n(r.uncovered ?? (r.order_up_to - r.position)), need_by: fmt.day(r.need_by) }));
    if (r.pack_size !== undefined) {
      out.push(t("why_purchase", { quantity: n(p.quantity, 0), drop: n(r.demand_until_order), pack: n(r.pack_size, 0),
        moq: r.moq ? t("why_moq", { moq: n(r.moq, 0) }) : "", order_by: fmt.day(r.order_by), arrival: fmt.day(r.expected_arrival),
        late: r.late ? t("why_late") : "" }));
    }
    if (r.source_surplus !== undefined) {
      out.push(t("why_transfer", { quantity: n(p.quantity, 0), source: p.source_location || "—", surplus: n(r.source_surplus, 0),
        days: n(r.transfer_lead_time_days) }));
    }
  }
  return out.length ? el("div", {}, out.map((s) => el("p", { class: "reasoning-text", text: s }))) : null;
}

// --- dead stock (issue 15): lots received long ago that nothing has shipped for long -----------------

Object.assign(MESSAGES.en, {
  nav_deadstock: "Dead stock", deadstock: "Dead stock", ds_rule: "Received at least {receipt} ago and nothing shipped for {outbound}.",
  ds_total: "Value on hand", ds_lots: "Lots", ds_units: "Units", ds_value: "Value", ds_received: "Since receipt",
  ds_outbound: "Since last outbound", ds_never: "never shipped", ds_none: "No dead stock: every lot received long ago has shipped recently.",
  ds_no_cost: "no unit cost",
});
Object.assign(MESSAGES["zh-CN"], {
  nav_deadstock: "呆滞库存", deadstock: "呆滞库存", ds_rule: "入库至少 {receipt}，且 {outbound} 内无出库。",
  ds_total: "在库金额", ds_lots: "批次数", ds_units: "件数", ds_value: "金额", ds_received: "入库至今",
  ds_outbound: "距上次出库", ds_never: "从未出库", ds_none: "没有呆滞库存：早已入库的批次近期都有出库。",
  ds_no_cost: "无单位成本",
});
NAV.splice(NAV.findIndex(([name]) => name === "lots") + 1, 0, ["deadstock", "nav_deadstock"]);

function moneyIn(value, currency, decimals) {
  if (value === null || value === undefined) return t("ds_no_cost");
  return fmt.num(value, { style: "currency", currency, minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

views.deadstock = {
  async render() {
    const report = await api("/api/v1/dead-stock" + qs({ site: state.site }));
    const money = (v) => moneyIn(v, report.currency, report.decimals);
    const units = report.items.reduce((sum, r) => sum + r.quantity, 0);
    const summary = table([t("ds_total"), t("ds_lots"), t("ds_units")],
      [[money(report.total_value), fmt.num(report.items.length), fmt.num(units)]], { id: "deadstock-summary", class: "kpis" });
    const rule = message("muted", t("ds_rule", { receipt: fmt.days(report.receipt_days), outbound: fmt.days(report.outbound_days) }));
    const rows = report.items.map((r) => [
      el("span", { title: r.sku, text: r.name === r.sku ? r.sku : `${r.name} (${r.sku})` }),
      r.lot_code || "—", `${r.site_id} / ${r.location}`, fmt.num(r.quantity), money(r.value),
      el("span", { title: fmt.date(r.received_at), text: fmt.days(r.days_since_receipt) }),
      r.days_since_outbound === null
        ? el("span", { class: "muted", text: t("ds_never") })
        : el("span", { title: fmt.date(r.last_outbound_at), text: fmt.days(r.days_since_outbound) }),
    ]);
    const list = rows.length ? table([t("product"), t("lot"), t("location"), t("ds_units"), t("ds_value"), t("ds_received"),
      t("ds_outbound")], rows, { id: "deadstock-table", class: "deadstock" }) : message("muted", t("ds_none"));
    if (rows.length) {
      labelCells(list);
      list.querySelectorAll("tbody tr").forEach((tr, i) => {
        const r = report.items[i];
        tr.dataset.lot = `${r.sku}/${r.lot_code || ""}/${r.location}`;
        [3, 4, 5, 6].forEach((c) => tr.children[c].classList.add("num"));
      });
    }
    const card = section(t("deadstock") + " (" + fmt.num(report.items.length) + ")", rule, summary, list);
    card.classList.add("wide");
    return el("div", { class: "grid" }, card);
  },
};

// --- router and polling ---------------------------------------------------------------------------

let current = { name: "login", arg: null };

function parseHash() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  if (name === "alerts" && arg) return { name: "alert", arg, nav: "alerts" };
  return { name: views[name] ? name : "overview", arg, nav: name };
}

async function route() {
  current = state.user ? parseHash() : { name: "login", arg: null, nav: "login" };
  if (!state.user && location.hash !== "#/login") history.replaceState(null, "", "#/login");
  renderHeader(current.nav);
  const view = views[current.name];
  const main = document.getElementById("view");
  const toolbar = view.toolbar ? view.toolbar(current.arg) : null;
  const content = el("div", { id: "content" }, message("muted", t("loading")));
  main.replaceChildren();
  append(main, [
    el("div", { class: "statusline" },
      state.role === "viewer" ? el("span", { class: "note", id: "viewer-note", text: t("viewer_note") }) : null,
      el("span", { id: "flash", class: "flash" }), el("span", { id: "updated", class: "muted" })),
    toolbar, content]);
  await refresh();
}

async function refresh() {
  const generation = ++state.generation;
  const view = views[current.name];
  const content = document.getElementById("content");
  if (!content) return;
  let node;
  let ok = true;
  state.loading = (state.loading || 0) + 1;
  try {
    node = await view.render(current.arg);
  } catch (err) {
    ok = false;
    node = message("error", failureText(err));
  } finally {
    state.loading -= 1;
  }
  if (generation !== state.generation) return ok; // a newer refresh or navigation won
  content.replaceChildren(node);
  const updated = document.getElementById("updated");
  if (updated && current.name !== "login") updated.textContent = t("updated", { time: fmt.time(new Date()) });
  return ok;
}

// Polling: one poll at a time (the next is scheduled only when this one has finished), at least
// three times as far apart as the last refresh took (a slow cloud gets fewer requests), doubling
// after a failure up to POLL_MAX_MS, and none at all while the tab is hidden.
async function poll() {
  state.timer = null;
  if (document.hidden || state.polling) return; // visibilitychange / the running poll schedules the next
  if (state.loading) {
    schedulePoll(POLL_MS); // a navigation's load is in flight: never a second request on top
    return;
  }
  const view = views[current.name];
  const dialogOpen = document.getElementById("prompt").open;
  const typing = document.activeElement && ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  const started = performance.now();
  let ok = true;
  state.polling = true;
  try {
    if (state.user && view && view.polls !== false && !dialogOpen && !typing) ok = await refresh();
  } finally {
    state.polling = false;
  }
  const took = performance.now() - started;
  state.pollDelay = ok
    ? Math.min(Math.max(POLL_MS, 3 * took), POLL_MAX_MS)
    : Math.min(2 * (state.pollDelay || POLL_MS), POLL_MAX_MS);
  schedulePoll(state.pollDelay);
}

function schedulePoll(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, delay);
}

async function logout() {
  try {
    await api("/web/logout", { method: "POST" });
  } finally {
    Object.assign(state, { user: null, role: null, csrf: null });
    location.hash = "#/login";
    route();
  }
}

async function start() {
  try {
    const session = await api("/web/session");
    Object.assign(state, { user: session.user, role: session.role, csrf: session.csrf });
    await loadSites();
  } catch {
    state.user = null;
  }
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !state.polling) schedulePoll(0); // back in view: fresh data now
    else clearTimeout(state.timer);
  });
  schedulePoll(POLL_MS);
  await route();
  document.body.dataset.ready = "1";
}

start();
