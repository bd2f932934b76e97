/* emotion-fleet dashboard: plain JS, no build step, no framework.
 * Talks only to the server's own /api/v1 (see fleet-server/API.md) with the
 * session cookie; shows only the aggregates the API gives (no images). */
(function () {
  'use strict';

  var API = 'api/v1/';             // relative: works at / and behind a path prefix
  var WINDOW_MS = 60 * 60 * 1000;   // charts show the last hour
  var MIN_REFETCH_MS = 2000;        // live re-fetch of a series at most every 2 s
  var SLIDE_MS = 60 * 1000;         // re-fetch anyway each minute so the window moves
  var EMOTIONS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
  var COLORS = {
    angry: '#dc2626', disgust: '#65a30d', fear: '#7c3aed', happy: '#ca8a04',
    sad: '#2563eb', surprise: '#ea580c', neutral: '#6b7280',
    faces: '#2563eb', valence: '#059669', arousal: '#db2777'
  };
  var STATS = [
    ['devices', 'Devices'], ['online', 'Online'], ['offline', 'Offline'],
    ['received', 'Received'], ['stored', 'Stored'], ['duplicates', 'Duplicates'],
    ['malformed', 'Malformed'], ['lost_windows', 'Lost windows']
  ];

  var state = { me: null, es: null, esRetry: null, everOpen: false, page: null, gen: 0 };
  var app, els = {};

  // ---------------------------------------------------------------- helpers

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v == null || v === false) return;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k === 'dataset') Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
        else if (k.slice(0, 2) === 'on' && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    add(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }

  function add(el, kids) {
    (Array.isArray(kids) ? kids : [kids]).forEach(function (c) {
      if (c == null || c === false) return;
      if (Array.isArray(c)) add(el, c);
      else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    });
    return el;
  }

  // Element.replaceChildren, for older kiosk browsers too.
  function setKids(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return add(el, Array.prototype.slice.call(arguments, 1));
  }

  function qs(params) {
    var u = new URLSearchParams();
    Object.keys(params).forEach(function (k) {
      if (params[k] != null && params[k] !== '') u.set(k, String(params[k]));
    });
    return u.toString();
  }

  function dec(s) { try { return decodeURIComponent(s); } catch (_) { return s; } }
  function enc(s) { return encodeURIComponent(s); }

  function txt(v) {
    if (v == null || v === '') return '—';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function num(v, digits) {
    return v == null || !isFinite(v) ? '—' : Number(v).toFixed(digits);
  }

  function pct(r) {
    return r == null || !isFinite(r) ? '—' : (r * 100).toFixed(1) + ' %';
  }

  function ratioOf(c) {
    if (!c) return null;
    if (c.ratio != null) return c.ratio;
    return c.expected ? c.stored / c.expected : null;
  }

  function rel(ms) {
    if (!ms) return 'never';
    var s = Math.round((Date.now() - ms) / 1000);
    var a = Math.abs(s);
    if (a < 5) return 'just now';
    var t = a < 60 ? a + ' s' : a < 3600 ? Math.floor(a / 60) + ' min'
      : a < 86400 ? Math.floor(a / 3600) + ' h' : Math.floor(a / 86400) + ' d';
    return s < 0 ? 'in ' + t : t + ' ago';
  }

  // <time> that keeps its relative text fresh (see the ticker in boot()).
  function when(ms) {
    if (!ms) return h('span', { class: 'muted', text: 'never' });
    var d = new Date(ms);
    return h('time', { datetime: d.toISOString(), title: d.toLocaleString(), dataset: { rel: String(ms) } }, rel(ms));
  }

  function abs(ms) { return ms ? new Date(ms).toLocaleString() : '—'; }

  function dot(online) {
    return h('span', { class: 'dot ' + (online ? 'on' : 'off'), title: online ? 'online' : 'offline' },
      h('span', { class: 'sr', text: online ? 'online' : 'offline' }));
  }

  function groupLinks(groups) {
    if (!groups || !groups.length) return h('span', { class: 'muted', text: '—' });
    return groups.map(function (g) { return h('a', { class: 'chip', href: '#/group/' + enc(g), text: g }); });
  }

  function chips(list) {
    if (!list || !list.length) return h('span', { class: 'muted', text: '—' });
    return list.map(function (t) { return h('span', { class: 'chip plain', text: t }); });
  }

  function errorBox(msg) { return h('p', { class: 'error', role: 'alert', text: msg }); }

  function section(title, id) {
    var s = h('section', { class: 'card', id: id || null });
    if (title) s.appendChild(h('h2', { text: title }));
    add(s, Array.prototype.slice.call(arguments, 2));
    return s;
  }

  function tableWrap(table) { return h('div', { class: 'table-wrap' }, table); }

  function byId(a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; }

  // Calls fn at most once per `ms`, never two at a time; extra calls fold into one.
  function throttled(fn, ms) {
    var last = 0, timer = null, running = false, again = false;
    function run() {
      timer = null;
      if (running) { again = true; return; }
      running = true;
      last = Date.now();
      Promise.resolve().then(fn).catch(function (e) { console.warn(e); }).then(function () {
        running = false;
        if (again) { again = false; kick(); }
      });
    }
    function kick() {
      if (timer) return;
      timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
    }
    kick.cancel = function () { clearTimeout(timer); timer = null; again = false; };
    return kick;
  }

  // ---------------------------------------------------------------- API

  function HttpError(status, message) {
    var e = new Error(message);
    e.status = status;
    return e;
  }

  function api(path, opts) {
    opts = opts || {};
    var init = {
      method: opts.method || 'GET',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' }
    };
    if (opts.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    return fetch(API + path, init).catch(function () {
      throw HttpError(0, 'The server cannot be reached.');
    }).then(function (res) {
      return res.text().then(function (text) {
        var body = null;
        if (text) { try { body = JSON.parse(text); } catch (_) { body = text; } }
        if (!res.ok) {
          var msg = body && typeof body === 'object' && body.error ? body.error
            : typeof body === 'string' && body ? body : res.status + ' ' + res.statusText;
          if (res.status === 401 && !opts.quiet401) sessionLost();
          throw HttpError(res.status, msg);
        }
        return body;
      });
    });
  }

  // Like api() but never rejects: {ok, value} or {ok:false, error}.
  function load(path) {
    return api(path).then(function (v) { return { ok: true, value: v }; },
      function (e) { return { ok: false, error: e }; });
  }

  function seriesRequest(scope) {
    var to = Date.now(), from = to - WINDOW_MS;
    var p = { from_ms: from, step: 'minute' };
    if (scope.device != null) p.device = scope.device;
    if (scope.group != null) p.group = scope.group;
    return { path: 'series?' + qs(p), win: { from: from, to: to } };
  }

  // ---------------------------------------------------------------- session

  function setHeader() {
    var me = state.me;
    els.nav.hidden = !me;
    els.logout.hidden = !me;
    els.who.hidden = !me;
    els.live.hidden = !me;
    if (me) {
      els.who.textContent = me.user + ' (' + me.role + ')';
      els.who.dataset.role = me.role;
    } else {
      els.who.textContent = '';
      delete els.who.dataset.role;
    }
  }

  function isOperator() { return !!state.me && state.me.role === 'operator'; }

  function signedIn(me) {
    state.me = me;
    setHeader();
    startEvents();
    route();
  }

  function sessionLost() {
    if (!state.me && document.body.dataset.ready === 'login') return;
    showLogin('Your session has ended; please log in again.');
  }

  function showLogin(notice) {
    state.me = null;
    stopEvents();
    leavePage();
    state.gen++;
    setHeader();
    document.title = 'Log in · emotion-fleet';
    var err = h('p', { id: 'login-error', class: 'error', role: 'alert', hidden: true });
    var user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', required: true, autofocus: true });
    var pass = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    var btn = h('button', { type: 'submit', text: 'Log in' });
    var form = h('form', { id: 'login-form', class: 'card login', novalidate: true },
      h('h1', { text: 'emotion-fleet' }),
      notice ? h('p', { class: 'muted', text: notice }) : null,
      h('label', null, 'User', user),
      h('label', null, 'Password', pass),
      btn, err);
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      err.hidden = true;
      if (!user.value || !pass.value) {
        err.textContent = 'Enter a user and a password.';
        err.hidden = false;
        return;
      }
      btn.disabled = true;
      api('login', { method: 'POST', body: { user: user.value, password: pass.value }, quiet401: true })
        .then(function (me) {
          signedIn(me && me.user ? me : { user: user.value, role: (me && me.role) || 'viewer' });
        }, function (e) {
          btn.disabled = false;
          err.textContent = e.status === 401 ? (e.message || 'Wrong user or password.') : e.message;
          err.hidden = false;
          pass.select();
        });
    });
    setKids(app, form);
    user.focus();
    document.body.dataset.ready = 'login';
  }

  function logout() {
    api('logout', { method: 'POST', quiet401: true }).catch(function () {}).then(function () {
      showLogin();
    });
  }

  // ---------------------------------------------------------------- live events

  function setLive(s) {
    els.live.dataset.state = s;
    els.live.textContent = s;
    els.live.title = s === 'live' ? 'Receiving live updates'
      : s === 'reconnecting' ? 'Connection lost; reconnecting'
      : s === 'connecting' ? 'Connecting for live updates' : 'No live updates; retrying';
  }

  function stopEvents() {
    clearTimeout(state.esRetry);
    if (state.es) { state.es.close(); state.es = null; }
    state.everOpen = false;
    if (els.live) setLive('offline');
  }

  function startEvents() {
    if (state.es) { state.es.close(); state.es = null; }
    clearTimeout(state.esRetry);
    if (typeof EventSource === 'undefined') { setLive('offline'); return; }
    var es = new EventSource(API + 'events', { withCredentials: true });
    state.es = es;
    setLive('connecting');
    es.onopen = function () {
      if (state.es !== es) return;
      var resumed = state.everOpen;
      state.everOpen = true;
      setLive('live');
      // After a gap we may have missed events: re-read what the page shows.
      if (resumed && state.page && state.page.resync) state.page.resync();
    };
    es.onerror = function () {
      if (state.es !== es) return;
      if (es.readyState === 2 /* CLOSED: refused, e.g. 401 or not an event stream */) {
        setLive('offline');
        state.esRetry = setTimeout(function () {
          if (state.es !== es) return;
          api('me').then(function () { if (state.me) startEvents(); },
            function (e) { if (e.status !== 401 && state.me) startEvents(); });
        }, 5000);
      } else {
        setLive('reconnecting');   // EventSource retries by itself
      }
    };
    ['summary', 'device', 'stats'].forEach(function (type) {
      es.addEventListener(type, function (ev) {
        if (state.es !== es) return;
        var data;
        try { data = JSON.parse(ev.data); } catch (_) { return; }
        var p = state.page;
        var fn = p && p['on' + type];
        if (fn) { try { fn(data); } catch (e) { console.error(e); } }
      });
    });
  }

  // ---------------------------------------------------------------- routing

  function parseRoute() {
    var hash = location.hash.replace(/^#\/?/, '');
    var parts = hash.split('/');
    var rest = dec(parts.slice(1).join('/'));
    if (parts[0] === '') return { name: 'overview' };
    if (parts[0] === 'device' && rest) return { name: 'device', arg: rest };
    if (parts[0] === 'group' && rest) return { name: 'group', arg: rest };
    if (parts[0] === 'audit') return { name: 'audit' };
    if (parts[0] === 'rollouts') return { name: 'rollouts' };
    if (parts[0] === 'rollout' && rest) return { name: 'rollout', arg: rest };
    return { name: 'notfound' };
  }

  function leavePage() {
    var p = state.page;
    if (!p) return;
    state.page = null;
    p.timers.forEach(function (t) { clearInterval(t); });
    p.cleanup.forEach(function (fn) { try { fn(); } catch (_) {} });
    Object.keys(p.charts).forEach(function (k) { p.charts[k].u.destroy(); });
    p.charts = {};
  }

  function route() {
    if (!state.me) return;
    var r = parseRoute();
    leavePage();
    var gen = ++state.gen;
    delete document.body.dataset.ready;
    var ctx = {
      name: r.name, gen: gen, charts: {}, timers: [], cleanup: [],
      alive: function () { return state.gen === gen && state.page === ctx; },
      ready: function () { if (ctx.alive()) document.body.dataset.ready = r.name; }
    };
    state.page = ctx;
    els.nav.querySelectorAll('a').forEach(function (a) {
      a.classList.toggle('active', a.getAttribute('href') === '#/' + (r.name === 'overview' ? '' : r.name));
    });
    setKids(app, h('p', { class: 'muted', text: 'Loading…' }));
    var pages = { overview: overviewPage, device: devicePage, group: groupPage, audit: auditPage, rollouts: rolloutsPage, rollout: rolloutPage, notfound: notFoundPage };
    Promise.resolve().then(function () { return pages[r.name](ctx, r.arg); }).catch(function (e) {
      if (!ctx.alive()) return;
      setKids(app, errorBox(e && e.message ? e.message : String(e)));
      ctx.ready();
    });
  }

  function notFoundPage(ctx) {
    document.title = 'Not found · emotion-fleet';
    setKids(app, section('Page not found', null, h('p', null, h('a', { href: '#/', text: 'Back to the overview' }))));
    ctx.ready();
  }

  // ---------------------------------------------------------------- charts

  function stepName(ms) { return ms === 3600000 ? 'hour' : ms === 60000 || !ms ? 'minute' : (ms / 1000) + ' s'; }

  function chartSpecs(kind, stepMs) {
    var fmt = function (u, v) { return v == null ? '–' : v.toFixed(2); };
    if (kind === 'faces') {
      var bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
      return {
        title: 'Faces seen per ' + stepName(stepMs),
        y: function (u, min, max) { return [0, Math.max(1, max || 0)]; },
        series: [{ label: 'faces', stroke: COLORS.faces, fill: 'rgba(37,99,235,0.3)', paths: bars, points: { show: false },
          value: function (u, v) { return v == null ? '–' : String(v); } }],
        col: function (p) { return p.faces_seen == null ? null : p.faces_seen; }
      };
    }
    if (kind === 'va') {
      return {
        title: 'Valence and arousal (−1..1)',
        y: function () { return [-1, 1]; },
        series: [
          { label: 'valence', stroke: COLORS.valence, width: 2, value: fmt },
          { label: 'arousal', stroke: COLORS.arousal, width: 2, value: fmt }
        ],
        cols: [function (p) { return p.valence; }, function (p) { return p.arousal; }]
      };
    }
    return {
      title: 'Emotions (face-weighted share)',
      y: function () { return [0, 1]; },
      series: EMOTIONS.map(function (e) { return { label: e, stroke: COLORS[e], width: 1.5, value: fmt }; }),
      cols: EMOTIONS.map(function (e) { return function (p) { return p.emotions && p.emotions[e] != null ? p.emotions[e] : null; }; })
    };
  }

  // uPlot columns from the API's points; a missing step becomes a gap (nulls).
  function columns(series, spec) {
    var pts = (series.points || []).slice().sort(function (a, b) { return a.t_ms - b.t_ms; });
    var step = series.step_ms || 60000;
    var getters = spec.cols || [spec.col];
    var data = [[]].concat(getters.map(function () { return []; }));
    var prev = null;
    pts.forEach(function (p) {
      if (prev != null && p.t_ms - prev > step * 1.5) {
        data[0].push((prev + step) / 1000);
        getters.forEach(function (g, i) { data[i + 1].push(null); });
      }
      data[0].push(p.t_ms / 1000);
      getters.forEach(function (g, i) { var v = g(p); data[i + 1].push(v == null ? null : v); });
      prev = p.t_ms;
    });
    return data;
  }

  function chartWidth(el) {
    return Math.max(260, Math.floor(el.clientWidth || (el.parentNode && el.parentNode.clientWidth) || 640));
  }

  function drawChart(ctx, kind, el, series, win) {
    var spec = chartSpecs(kind);
    var data = columns(series, spec);
    var lastT = data[0].length ? data[0][data[0].length - 1] : 0;
    var range = { from: win.from / 1000, to: Math.max(win.to / 1000, lastT) };
    var existing = ctx.charts[kind];
    if (existing && existing.el === el) {
      existing.range.from = range.from;
      existing.range.to = range.to;
      existing.u.setData(data);
    } else {
      if (existing) existing.u.destroy();
      setKids(el);
      var opts = {
        width: chartWidth(el),
        height: 200,
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true, range: function () { return [range.from, range.to]; } },
          y: { range: spec.y }
        },
        axes: [{}, { size: 44 }],
        series: [{}].concat(spec.series)
      };
      ctx.charts[kind] = { u: new window.uPlot(opts, data, el), el: el, range: range };
    }
    el.setAttribute('data-points', String((series.points || []).length));
  }

  // A block of charts for one series (or the suppressed sentence), kept up to date
  // by calling view.update(series, win).
  function seriesView(ctx, kinds) {
    var holder = h('div', { class: 'series' });
    var mode = null;   // 'charts' | 'suppressed' | 'error'
    var boxes = {};
    var note = h('p', { class: 'muted small' });
    function update(res, win) {
      if (!res.ok) {
        if (mode === 'charts') { note.textContent = 'Could not refresh: ' + res.error.message; return; }
        mode = 'error';
        setKids(holder, errorBox('Could not load the series: ' + res.error.message));
        return;
      }
      var s = res.value || {};
      if (s.suppressed) {
        if (mode !== 'suppressed') {
          kinds.forEach(function (k) { if (ctx.charts[k]) { ctx.charts[k].u.destroy(); delete ctx.charts[k]; } });
          mode = 'suppressed';
          setKids(holder, h('p', { id: 'suppressed', class: 'notice' }));
        }
        holder.querySelector('#suppressed').textContent = 'Fewer than ' + (s.k != null ? s.k : 'k') +
          ' devices: aggregates are hidden so one device\'s data is not shown as a group\'s.';
        return;
      }
      if (typeof window.uPlot !== 'function') {
        mode = 'error';
        setKids(holder, errorBox('The chart library did not load.'));
        return;
      }
      if (mode !== 'charts') {
        mode = 'charts';
        boxes = {};
        setKids(holder);
        kinds.forEach(function (k) {
          boxes[k] = h('div', { id: 'chart-' + k, class: 'chart' });
          holder.appendChild(h('figure', { class: 'chart-box' }, h('figcaption', { text: chartSpecs(k, s.step_ms).title }), boxes[k]));
        });
        holder.appendChild(note);
      }
      var n = (s.points || []).length;
      note.textContent = (n ? n + ' steps' : 'No data') + ' in the last hour' +
        (s.devices != null ? ' · ' + s.devices + ' device' + (s.devices === 1 ? '' : 's') : '') +
        ' · updated ' + new Date().toLocaleTimeString();
      kinds.forEach(function (k) { drawChart(ctx, k, boxes[k], s, win); });
    }
    return { el: holder, update: update };
  }

  // Fetches a series into a view now, and again (throttled) on kick().
  function liveSeries(ctx, scope, view) {
    function fetchOnce() {
      var req = seriesRequest(scope);
      return load(req.path).then(function (res) {
        if (ctx.alive()) view.update(res, req.win);
      });
    }
    var kick = throttled(fetchOnce, MIN_REFETCH_MS);
    ctx.cleanup.push(kick.cancel);
    ctx.timers.push(setInterval(kick, SLIDE_MS));
    return { first: fetchOnce, kick: kick };
  }

  function resizeCharts() {
    var p = state.page;
    if (!p) return;
    Object.keys(p.charts).forEach(function (k) {
      var c = p.charts[k];
      c.u.setSize({ width: chartWidth(c.el), height: 200 });
    });
  }

  // ---------------------------------------------------------------- device table

  function deviceRow(d) {
    var expr = d.models && d.models.expression;
    var last = d.last_summary;
    return h('tr', { dataset: { device: d.id } },
      h('td', null, h('a', { href: '#/device/' + enc(d.id), text: d.id })),
      h('td', { class: 'c' }, dot(d.online)),
      h('td', null, when(d.last_seen_ms)),
      h('td', null, groupLinks(d.groups)),
      h('td', null, expr ? [h('span', { class: 'mono', text: txt(expr.id) }), ' ', h('span', { class: 'muted small', text: txt(expr.engine) })] : '—'),
      h('td', null, txt(d.camera)),
      h('td', { class: 'num completeness' }, pct(ratioOf(d.completeness))),
      h('td', { class: 'dominant' }, last && last.dominant ? last.dominant : '—'));
  }

  function deviceTable(devices) {
    var body = h('tbody');
    var table = h('table', { id: 'devices', class: 'list' },
      h('thead', null, h('tr', null,
        ['Device', 'Online', 'Last seen', 'Groups', 'Expression model', 'Camera', 'Completeness', 'Last dominant']
          .map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      body);
    function empty() {
      if (!body.rows.length) body.appendChild(h('tr', { class: 'empty' }, h('td', { colspan: 8, class: 'muted', text: 'No devices.' })));
    }
    function find(id) {
      for (var i = 0; i < body.rows.length; i++) if (body.rows[i].dataset.device === id) return body.rows[i];
      return null;
    }
    function upsert(d) {
      var row = deviceRow(d), old = find(d.id);
      if (old) { body.replaceChild(row, old); return; }
      var e = body.querySelector('tr.empty');
      if (e) e.remove();
      for (var i = 0; i < body.rows.length; i++) {
        if (body.rows[i].dataset.device > d.id) { body.insertBefore(row, body.rows[i]); return; }
      }
      body.appendChild(row);
    }
    function remove(id) { var r = find(id); if (r) r.remove(); empty(); }
    devices.slice().sort(byId).forEach(function (d) { body.appendChild(deviceRow(d)); });
    empty();
    return { el: tableWrap(table), upsert: upsert, remove: remove };
  }

  // ---------------------------------------------------------------- overview

  function statsBlock() {
    var el = h('div', { id: 'stats', class: 'stats' },
      STATS.map(function (s) {
        return h('div', { class: 'stat' }, h('span', { class: 'stat-n', dataset: { stat: s[0] }, text: '—' }), h('span', { class: 'stat-l', text: s[1] }));
      }));
    var since = h('p', { class: 'muted small' });
    function update(st) {
      if (!st) return;
      STATS.forEach(function (s) {
        var v = s[0] === 'offline' ? (st.devices != null && st.online != null ? st.devices - st.online : null) : st[s[0]];
        el.querySelector('[data-stat="' + s[0] + '"]').textContent = v == null ? '—' : String(v);
      });
      since.textContent = st.started_ms ? 'Server running since ' + abs(st.started_ms) : '';
    }
    return { el: [el, since], update: update };
  }

  function modelsTable(devices) {
    var counts = [];
    var index = {};
    devices.forEach(function (d) {
      ['detector', 'expression'].forEach(function (kind) {
        var m = d.models && d.models[kind];
        var id = m && m.id ? m.id : '(none)';
        var key = kind + '\u0000' + id;
        if (!index[key]) { index[key] = { kind: kind, id: id, engines: [], n: 0 }; counts.push(index[key]); }
        index[key].n++;
        if (m && m.engine && index[key].engines.indexOf(m.engine) < 0) index[key].engines.push(m.engine);
      });
    });
    counts.sort(function (a, b) { return a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : b.n - a.n; });
    return tableWrap(h('table', { id: 'models', class: 'list' },
      h('thead', null, h('tr', null, ['Kind', 'Model', 'Engine', 'Devices'].map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, counts.length ? counts.map(function (c) {
        return h('tr', null, h('td', { text: c.kind }), h('td', { class: 'mono', text: c.id }),
          h('td', { text: c.engines.join(', ') || '—' }), h('td', { class: 'num', text: String(c.n) }));
      }) : h('tr', null, h('td', { colspan: 4, class: 'muted', text: 'No devices.' })))));
  }

  function completenessBlock(devices) {
    var stored = 0, expected = 0, lost = 0;
    devices.forEach(function (d) {
      var c = d.completeness;
      if (!c) return;
      stored += c.stored || 0;
      expected += c.expected || 0;
      lost += c.lost_windows || 0;
    });
    return h('div', { id: 'completeness' },
      h('span', { id: 'completeness-value', class: 'big', text: expected ? pct(stored / expected) : '—' }),
      h('p', { class: 'muted small', text: stored + ' of ' + expected + ' expected summaries stored' + (lost ? ', ' + lost + ' lost windows' : '') }));
  }

  function groupsBlock(devices) {
    var n = {};
    devices.forEach(function (d) { (d.groups || []).forEach(function (g) { n[g] = (n[g] || 0) + 1; }); });
    var names = Object.keys(n).sort();
    if (!names.length) return h('p', { id: 'groups', class: 'muted', text: 'No groups yet.' });
    return h('ul', { id: 'groups', class: 'inline' }, names.map(function (g) {
      return h('li', null, h('a', { class: 'chip', href: '#/group/' + enc(g), text: g }), ' ', h('span', { class: 'muted small', text: n[g] + ' device' + (n[g] === 1 ? '' : 's') }));
    }));
  }

  function feedbackModelsTable(res) {
    if (!res.ok) return errorBox('Could not load the feedback: ' + res.error.message);
    var rows = res.value || [];
    return tableWrap(h('table', { id: 'feedback-models', class: 'list' },
      h('thead', null, h('tr', null, ['Model', 'Presses', 'Labelled', 'Agreement', 'Presses per face-hour']
        .map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, rows.length ? rows.map(function (m) {
        return h('tr', null,
          h('td', { class: 'mono', text: txt(m.model) }),
          h('td', { class: 'num', text: txt(m.presses) }),
          h('td', { class: 'num', text: txt(m.labelled) }),
          h('td', { class: 'num', text: pct(m.agreement) }),
          h('td', { class: 'num', title: m.faces_hours != null ? num(m.faces_hours, 2) + ' face-hours' : null, text: num(m.presses_per_face_hour, 2) }));
      }) : h('tr', null, h('td', { colspan: 5, class: 'muted', text: 'No feedback yet.' })))));
  }

  function overviewPage(ctx) {
    document.title = 'Overview · emotion-fleet';
    var req = seriesRequest({});
    return Promise.all([load('stats'), load('devices'), load(req.path), load('feedback/models')]).then(function (r) {
      if (!ctx.alive()) return;
      var stats = statsBlock();
      var devices = r[1].ok ? (r[1].value || []) : [];
      var byIdMap = {};
      devices.forEach(function (d) { byIdMap[d.id] = d; });
      var list = function () { return Object.keys(byIdMap).map(function (k) { return byIdMap[k]; }); };

      var table = deviceTable(devices);
      var modelsHolder = h('div', null, modelsTable(devices));
      var complHolder = h('div', null, completenessBlock(devices));
      var groupsHolder = h('div', null, groupsBlock(devices));
      var fbHolder = h('div', null, feedbackModelsTable(r[3]));
      var view = seriesView(ctx, ['faces', 'va']);

      setKids(app,
        section(null, null, h('h1', { text: 'Fleet overview' }), stats.el, r[0].ok ? null : errorBox('Could not load the counters: ' + r[0].error.message)),
        h('div', { class: 'cols' },
          section('Data completeness', null, complHolder),
          section('Model versions in use', null, modelsHolder),
          section('Groups', null, groupsHolder)),
        section('Fleet, last hour', 'fleet-series', view.el),
        section('Devices', null, r[1].ok ? table.el : errorBox('Could not load the devices: ' + r[1].error.message)),
        section('Feedback per model', null, fbHolder));

      if (r[0].ok) stats.update(r[0].value);
      view.update(r[2], req.win);
      var live = liveSeries(ctx, {}, view);

      var refreshDerived = function () {
        var all = list();
        setKids(modelsHolder, modelsTable(all));
        setKids(complHolder, completenessBlock(all));
        setKids(groupsHolder, groupsBlock(all));
      };
      var refreshFeedback = function () {
        return load('feedback/models').then(function (res) {
          if (ctx.alive() && res.ok) setKids(fbHolder, feedbackModelsTable(res));
        });
      };
      ctx.timers.push(setInterval(refreshFeedback, SLIDE_MS));

      ctx.onstats = stats.update;
      ctx.ondevice = function (d) {
        if (!d || d.id == null) return;
        byIdMap[d.id] = d;
        table.upsert(d);
        refreshDerived();
      };
      ctx.onsummary = function (s) {
        var d = byIdMap[s.device_id];
        if (d) {
          d.last_summary = { t_ms: s.t_ms, faces_seen: s.faces_seen, dominant: s.dominant, valence: s.valence, arousal: s.arousal };
          table.upsert(d);
        }
        live.kick();
      };
      ctx.resync = function () {
        Promise.all([load('stats'), load('devices')]).then(function (x) {
          if (!ctx.alive()) return;
          if (x[0].ok) stats.update(x[0].value);
          if (x[1].ok) {
            var fresh = {};
            (x[1].value || []).forEach(function (d) { fresh[d.id] = d; table.upsert(d); });
            Object.keys(byIdMap).forEach(function (id) { if (!fresh[id]) table.remove(id); });
            byIdMap = fresh;
            refreshDerived();
          }
        });
        live.kick();
        refreshFeedback();
      };
      ctx.ready();
    });
  }

  // ---------------------------------------------------------------- device page

  function deviceFields(d) {
    var c = d.completeness;
    var ls = d.last_summary;
    var rows = [
      ['Online', [dot(d.online), ' ', d.online ? 'online' : 'offline']],
      ['Last seen', [when(d.last_seen_ms), ' ', h('span', { class: 'muted small', text: abs(d.last_seen_ms) })]],
      ['First seen', abs(d.first_seen_ms)],
      ['Version', txt(d.version)],
      ['Boot id', txt(d.boot_id)],
      ['Groups', groupLinks(d.groups)],
      ['Tags', chips(d.tags)],
      ['Models', d.models && Object.keys(d.models).length ? h('ul', { class: 'plain' }, Object.keys(d.models).map(function (k) {
        var m = d.models[k] || {};
        return h('li', null, h('b', { text: k + ': ' }), h('span', { class: 'mono', text: txt(m.id) }), ' ', h('span', { class: 'muted', text: '(' + txt(m.engine) + ')' }));
      })) : '—'],
      ['Model states', d.model_states && Object.keys(d.model_states).length ? h('ul', { class: 'plain' }, Object.keys(d.model_states).map(function (k) {
        var s = d.model_states[k] || {};
        return h('li', null, h('b', { text: k + ': ' }), h('span', { class: 'state state-' + String(s.state).replace(/[^a-z_-]/gi, ''), text: txt(s.state) }),
          s.model ? [' ', h('span', { class: 'mono small', text: s.model })] : null,
          s.at_ms ? [' ', h('span', { class: 'muted small', text: 'since ' + abs(s.at_ms) })] : null);
      })) : '—'],
      ['Camera', txt(d.camera)],
      ['Microphone', txt(d.microphone)],
      ['Last error', d.last_error == null ? h('span', { class: 'muted', text: 'none' }) : h('span', { class: 'error-text', text: txt(d.last_error) })],
      ['Completeness', c ? pct(ratioOf(c)) + ' (' + txt(c.stored) + ' of ' + txt(c.expected) + ' stored, ' + txt(c.lost_windows) + ' lost windows)' : '—'],
      ['Last summary', ls ? [txt(ls.dominant), ', ' + txt(ls.faces_seen) + ' faces, valence ' + num(ls.valence, 2) + ', arousal ' + num(ls.arousal, 2) + ', ', when(ls.t_ms)] : '—']
    ];
    return h('dl', { id: 'device-fields', class: 'fields' }, rows.map(function (r) { return [h('dt', { text: r[0] }), h('dd', null, r[1])]; }));
  }

  function feedbackList(res) {
    if (!res.ok) return errorBox('Could not load the feedback: ' + res.error.message);
    var items = res.value || [];
    if (!items.length) return h('p', { id: 'feedback', class: 'muted', text: 'No feedback yet.' });
    return h('ul', { id: 'feedback', class: 'feedback' }, items.map(function (f) {
      var agrees = f.agrees === true ? h('span', { class: 'ok', title: 'agrees with the dominant emotion', text: '✓ agrees' })
        : f.agrees === false ? h('span', { class: 'bad', title: 'differs from the dominant emotion', text: '✗ differs' }) : null;
      return h('li', null, when(f.ts_ms), ' ', h('b', { text: txt(f.kind) }),
        f.label ? [' “', f.label, '”'] : null,
        ' · dominant ', txt(f.dominant), ' ', agrees,
        f.model ? h('span', { class: 'muted small mono', text: ' ' + f.model }) : null);
    }));
  }

  function splitList(s) {
    var out = [];
    s.split(',').forEach(function (x) { x = x.trim(); if (x && out.indexOf(x) < 0) out.push(x); });
    return out;
  }

  function groupForm(ctx, id, dev, onSaved) {
    var dirty = false;
    var groups = h('input', { id: 'group-input', name: 'groups', placeholder: 'lobby, floor-2', value: (dev.groups || []).join(', ') });
    var tags = h('input', { id: 'tags-input', name: 'tags', placeholder: 'pilot, north', value: (dev.tags || []).join(', ') });
    var btn = h('button', { type: 'submit', text: 'Save' });
    var msg = h('span', { class: 'small', role: 'status' });
    var form = h('form', { id: 'group-form', class: 'inline-form' },
      h('label', null, 'Groups (comma separated)', groups),
      h('label', null, 'Tags (comma separated)', tags),
      btn, msg);
    form.addEventListener('input', function () { dirty = true; });
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      btn.disabled = true;
      msg.className = 'small';
      msg.textContent = 'Saving…';
      api('devices/' + enc(id) + '/groups', { method: 'PUT', body: { groups: splitList(groups.value), tags: splitList(tags.value) } })
        .then(function (d) {
          if (!ctx.alive()) return;
          dirty = false;
          btn.disabled = false;
          msg.textContent = 'Saved.';
          if (d && d.id != null) { onSaved(d); setValues(d); }
        }, function (e) {
          if (!ctx.alive()) return;
          btn.disabled = false;
          msg.className = 'small error-text';
          msg.textContent = e.message;
        });
    });
    function setValues(d) {
      if (dirty || document.activeElement === groups || document.activeElement === tags) return;
      groups.value = (d.groups || []).join(', ');
      tags.value = (d.tags || []).join(', ');
    }
    return { el: form, setValues: setValues };
  }

  function devicePage(ctx, id) {
    document.title = id + ' · emotion-fleet';
    var req = seriesRequest({ device: id });
    var fbPath = 'feedback?' + qs({ device: id, limit: 20 });
    return Promise.all([load('devices/' + enc(id)), load(req.path), load(fbPath)]).then(function (r) {
      if (!ctx.alive()) return;
      if (!r[0].ok) {
        var unknown = r[0].error.status === 404;
        setKids(app, section(null, null, h('h1', { text: id }),
          unknown ? h('p', { id: 'not-found', text: 'No device with this id has reported to this server.' }) : errorBox(r[0].error.message),
          h('p', null, h('a', { href: '#/', text: 'Back to the overview' }))));
        ctx.ondevice = function (d) { if (d && d.id === id) route(); };
        ctx.ready();
        return;
      }
      var dev = r[0].value;
      var title = h('h1', null, dot(dev.online), ' ', dev.id);
      var fieldsHolder = h('div', null, deviceFields(dev));
      var fbHolder = h('div', null, feedbackList(r[2]));
      var view = seriesView(ctx, ['emotions', 'va', 'faces']);
      var showDevice = function (d) {
        dev = d;
        setKids(title, dot(d.online), ' ', d.id);
        setKids(fieldsHolder, deviceFields(d));
      };
      var form = isOperator() ? groupForm(ctx, id, dev, showDevice) : null;

      setKids(app,
        h('p', { class: 'crumbs' }, h('a', { href: '#/', text: 'Overview' }), ' › device'),
        section(null, null, title, fieldsHolder,
          form ? h('div', { class: 'edit' }, h('h2', { text: 'Groups and tags' }), form.el) : null),
        section('Last hour', 'device-series', view.el),
        section('Recent feedback', null, fbHolder));
      view.update(r[1], req.win);

      var live = liveSeries(ctx, { device: id }, view);
      var refreshFeedback = throttled(function () {
        return load(fbPath).then(function (res) { if (ctx.alive() && res.ok) setKids(fbHolder, feedbackList(res)); });
      }, MIN_REFETCH_MS);
      ctx.cleanup.push(refreshFeedback.cancel);

      ctx.ondevice = function (d) {
        if (!d || d.id !== id) return;
        showDevice(d);
        if (form) form.setValues(d);
      };
      ctx.onsummary = function (s) {
        if (s.device_id !== id) return;
        dev.last_summary = { t_ms: s.t_ms, faces_seen: s.faces_seen, dominant: s.dominant, valence: s.valence, arousal: s.arousal };
        setKids(fieldsHolder, deviceFields(dev));
        live.kick();
        refreshFeedback();
      };
      ctx.resync = function () {
        load('devices/' + enc(id)).then(function (res) { if (ctx.alive() && res.ok) ctx.ondevice(res.value); });
        live.kick();
        refreshFeedback();
      };
      ctx.ready();
    });
  }

  // ---------------------------------------------------------------- group page

  function groupPage(ctx, name) {
    document.title = 'Group ' + name + ' · emotion-fleet';
    var req = seriesRequest({ group: name });
    return Promise.all([load(req.path), load('devices')]).then(function (r) {
      if (!ctx.alive()) return;
      var inGroup = function (d) { return (d.groups || []).indexOf(name) >= 0; };
      var members = {};
      var all = r[1].ok ? (r[1].value || []) : [];
      all.filter(inGroup).forEach(function (d) { members[d.id] = d; });
      var table = deviceTable(all.filter(inGroup));
      var view = seriesView(ctx, ['faces', 'emotions', 'va']);
      var count = h('span', { class: 'muted small' });
      var setCount = function () {
        var n = Object.keys(members).length;
        count.textContent = n + ' member device' + (n === 1 ? '' : 's');
      };
      setCount();
      setKids(app,
        h('p', { class: 'crumbs' }, h('a', { href: '#/', text: 'Overview' }), ' › group'),
        section(null, null, h('h1', { text: 'Group ' + name }), count),
        section('Last hour', 'group-series', view.el),
        section('Member devices', null, r[1].ok ? table.el : errorBox('Could not load the devices: ' + r[1].error.message)));
      view.update(r[0], req.win);
      var live = liveSeries(ctx, { group: name }, view);

      ctx.ondevice = function (d) {
        if (!d || d.id == null) return;
        var was = !!members[d.id];
        if (inGroup(d)) { members[d.id] = d; table.upsert(d); } else if (was) { delete members[d.id]; table.remove(d.id); }
        setCount();
        if (was !== inGroup(d)) live.kick();   // membership change may lift or impose suppression
      };
      ctx.onsummary = function (s) {
        var d = members[s.device_id];
        if (!d) return;
        d.last_summary = { t_ms: s.t_ms, faces_seen: s.faces_seen, dominant: s.dominant, valence: s.valence, arousal: s.arousal };
        table.upsert(d);
        live.kick();
      };
      ctx.resync = function () {
        load('devices').then(function (res) {
          if (!ctx.alive() || !res.ok) return;
          var seen = {};
          (res.value || []).forEach(function (d) { if (inGroup(d)) seen[d.id] = true; ctx.ondevice(d); });
          Object.keys(members).forEach(function (id) { if (!seen[id]) { delete members[id]; table.remove(id); } });
          setCount();
        });
        live.kick();
      };
      ctx.ready();
    });
  }

  // ---------------------------------------------------------------- audit

  function auditTable(res) {
    if (!res.ok) return errorBox('Could not load the audit log: ' + res.error.message);
    var rows = res.value || [];
    return tableWrap(h('table', { id: 'audit', class: 'list' },
      h('thead', null, h('tr', null, ['When', 'Actor', 'Action', 'Detail'].map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, rows.length ? rows.map(function (a) {
        return h('tr', null, h('td', { class: 'nowrap', title: rel(a.at_ms), text: abs(a.at_ms) }), h('td', { text: txt(a.actor) }),
          h('td', { text: txt(a.action) }), h('td', { class: 'detail', text: txt(a.detail) }));
      }) : h('tr', null, h('td', { colspan: 4, class: 'muted', text: 'Nothing recorded yet.' })))));
  }

  function auditPage(ctx) {
    document.title = 'Audit · emotion-fleet';
    var path = 'audit?' + qs({ limit: 100 });
    return load(path).then(function (res) {
      if (!ctx.alive()) return;
      var holder = h('div', null, auditTable(res));
      setKids(app, section(null, null, h('h1', { text: 'Audit log' }),
        h('p', { class: 'muted small', text: 'The latest 100 entries, newest first.' }), holder));
      var refresh = throttled(function () {
        return load(path).then(function (x) { if (ctx.alive() && x.ok) setKids(holder, auditTable(x)); });
      }, MIN_REFETCH_MS);
      ctx.cleanup.push(refresh.cancel);
      ctx.timers.push(setInterval(refresh, 15000));
      ctx.ondevice = refresh;   // group/tag changes are audited and also send a device event
      ctx.resync = refresh;
      ctx.ready();
    });
  }

  // ---------------------------------------------------------------- rollouts

  var ROLLOUT_COLS = ['devices', 'pending', 'offline', 'in_progress', 'succeeded', 'failed', 'rolled_back'];

  function stagesTable(r) {
    return tableWrap(h('table', { class: 'list stages' },
      h('thead', null, h('tr', null, ['Stage', '%'].concat(ROLLOUT_COLS.map(function (c) { return c.replace('_', ' '); }))
        .map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, (r.stages || []).map(function (s, i) {
        return h('tr', { class: i + 1 === r.stage ? 'current' : null },
          [h('td', { text: String(i + 1) }), h('td', { text: String(s.percent) })].concat(
            ROLLOUT_COLS.map(function (c) { return h('td', { class: 'num ' + c, text: String(s[c]) }); })));
      }))));
  }

  function rolloutsTable(list) {
    return tableWrap(h('table', { id: 'rollouts', class: 'list' },
      h('thead', null, h('tr', null, ['Rollout', 'Group', 'Model', 'Phase', 'Stage', 'Healthy', 'Failed', 'Started']
        .map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, list.length ? list.map(function (r) {
        var sum = function (k) { return (r.stages || []).reduce(function (a, s) { return a + s[k]; }, 0); };
        return h('tr', null, h('td', null, h('a', { href: '#/rollout/' + enc(r.id), text: r.id })),
          h('td', { text: r.group }), h('td', { text: r.model }),
          h('td', null, h('span', { class: 'phase ' + r.phase, text: r.phase })),
          h('td', { text: r.stage + ' / ' + (r.stages || []).length }), h('td', { class: 'num', text: String(sum('succeeded')) }),
          h('td', { class: 'num', text: String(sum('failed')) }), h('td', { class: 'nowrap', text: abs(r.created_ms) }));
      }) : h('tr', null, h('td', { colspan: 8, class: 'muted', text: 'No rollouts yet.' })))));
  }

  function readFile(input, asText) {
    return new Promise(function (ok, fail) {
      var f = input.files && input.files[0];
      if (!f) { fail(new Error('Choose the ' + input.name + ' file.')); return; }
      var rd = new FileReader();
      rd.onerror = function () { fail(new Error('Cannot read ' + f.name)); };
      rd.onload = function () { ok(asText ? rd.result : String(rd.result).replace(/^data:[^,]*,/, '')); };
      if (asText) rd.readAsText(f); else rd.readAsDataURL(f);
    });
  }

  function createForm() {
    var msg = h('p', { class: 'small', role: 'status' });
    var field = function (label, input) { return h('label', null, h('span', { text: label }), input); };
    var group = h('input', { name: 'group', required: true });
    // the model slot the package is for (the backend refuses a package of another task)
    var slot = h('select', { name: 'slot' }, h('option', { value: 'expression', text: 'expression' }), h('option', { value: 'detector', text: 'detector' }));
    var pkg = h('input', { name: 'package', type: 'file' });
    var sig = h('input', { name: 'signature', type: 'file' });
    var stages = h('input', { name: 'stages', value: '1,10,50,100' });
    var soak = h('input', { name: 'soak', type: 'number', min: '0', value: '1800' });
    var onFail = h('select', { name: 'on_failure' }, h('option', { value: 'pause', text: 'pause' }), h('option', { value: 'abort', text: 'abort' }));
    var form = h('form', { id: 'rollout-create', class: 'inline-form' },
      field('Group', group), field('Slot', slot), field('Package', pkg), field('Signature (.sig)', sig), field('Stages (%)', stages),
      field('Soak (s)', soak), field('On failure', onFail), h('button', { type: 'submit', text: 'Start rollout' }), msg);
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      msg.textContent = 'Uploading…';
      Promise.all([readFile(pkg, false), readFile(sig, true)]).then(function (files) {
        var plan = { stages: stages.value.split(',').map(function (x) { return Number(x.trim()); }),
          soak_ms: Number(soak.value) * 1000, on_failure: onFail.value };
        return api('rollouts', { method: 'POST', body: { group: group.value.trim(), slot: slot.value,
          package: files[0], signature: JSON.parse(files[1]), plan: plan } });
      }).then(function (r) { location.hash = '#/rollout/' + enc(r.id); },
        function (e) { msg.textContent = e.message; msg.className = 'small error'; });
    });
    return section('New rollout', null, form);
  }

  function rolloutsPage(ctx) {
    document.title = 'Rollouts · emotion-fleet';
    return load('rollouts').then(function (res) {
      if (!ctx.alive()) return;
      var holder = h('div', null, res.ok ? rolloutsTable(res.value || []) : errorBox(res.error.message));
      setKids(app, section(null, null, h('h1', { text: 'Rollouts' }), holder), isOperator() ? createForm() : null);
      ctx.timers.push(setInterval(function () {
        load('rollouts').then(function (x) { if (ctx.alive() && x.ok) setKids(holder, rolloutsTable(x.value || [])); });
      }, 5000));
      ctx.ready();
    });
  }

  function rolloutView(r, ctx, refresh) {
    var msg = h('p', { class: 'small', role: 'status' });
    var act = function (a) {
      return h('button', { type: 'button', id: 'rollout-' + a, text: a[0].toUpperCase() + a.slice(1), onclick: function () {
        api('rollouts/' + enc(r.id) + '/' + a, { method: 'POST' }).then(refresh, function (e) { msg.textContent = e.message; msg.className = 'small error'; });
      } });
    };
    var controls = !isOperator() ? null : h('p', { class: 'controls' },
      r.phase === 'running' ? act('pause') : null, r.phase === 'paused' ? act('resume') : null,
      r.phase === 'running' || r.phase === 'paused' ? act('abort') : null, msg);
    var fails = r.failures || [];
    return [section(null, null, h('h1', { text: 'Rollout ' + r.id }),
      h('p', null, h('span', { class: 'phase ' + r.phase, id: 'rollout-phase', text: r.phase }), ' ',
        r.model + ' to group ', h('a', { href: '#/group/' + enc(r.group), text: r.group }),
        ', stage ' + r.stage + ' of ' + (r.stages || []).length + ', by ' + r.created_by + ', ' + abs(r.created_ms)),
      r.reason ? h('p', { class: 'reason', text: r.reason }) : null, controls, stagesTable(r)),
    section('Failures', null, fails.length ? tableWrap(h('table', { id: 'failures', class: 'list' },
      h('thead', null, h('tr', null, ['Device', 'Stage', 'Progress', 'Reason'].map(function (t) { return h('th', { scope: 'col', text: t }); }))),
      h('tbody', null, fails.map(function (f) {
        return h('tr', null, h('td', null, h('a', { href: '#/device/' + enc(f.device_id), text: f.device_id })),
          h('td', { text: String(f.stage) }), h('td', { text: f.progress }), h('td', { text: f.reason }));
      })))) : h('p', { class: 'muted', text: 'None.' })),
    section('Decisions', null, tableWrap(h('table', { id: 'decisions', class: 'list' },
      h('tbody', null, (r.decisions || []).slice().reverse().map(function (d) {
        return h('tr', null, h('td', { class: 'nowrap', text: abs(d.at_ms) }), h('td', { text: d.kind }), h('td', { class: 'detail', text: d.detail }));
      })))))];
  }

  function rolloutPage(ctx, id) {
    document.title = 'Rollout ' + id + ' · emotion-fleet';
    var path = 'rollouts/' + enc(id);
    var refresh = function () {
      return load(path).then(function (x) {
        if (!ctx.alive()) return;
        if (!x.ok) { setKids(app, errorBox(x.error.message)); return; }
        setKids(app, rolloutView(x.value, ctx, refresh));
      });
    };
    return refresh().then(function () {
      ctx.timers.push(setInterval(refresh, 3000));
      ctx.ready();
    });
  }

  // ---------------------------------------------------------------- boot

  function boot() {
    app = document.getElementById('app');
    ['nav', 'who', 'live', 'logout'].forEach(function (id) { els[id] = document.getElementById(id); });
    els.logout.addEventListener('click', logout);
    window.addEventListener('hashchange', route);
    var resizeTimer = null;
    window.addEventListener('resize', function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(resizeCharts, 150);
    });
    setInterval(function () {
      document.querySelectorAll('time[data-rel]').forEach(function (t) { t.textContent = rel(Number(t.dataset.rel)); });
    }, 5000);
    api('me', { quiet401: true }).then(signedIn, function (e) {
      if (e.status === 401) { showLogin(); return; }
      setKids(app, section('Cannot reach the server', null, errorBox(e.message),
        h('p', null, h('button', { type: 'button', onclick: function () { location.reload(); }, text: 'Try again' }))));
      document.body.dataset.ready = 'error';
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
