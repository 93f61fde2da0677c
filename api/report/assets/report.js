"use strict";
// The graph diff: each side laid out by dagre, unchanged regions folded until clicked. Model
// strings only ever reach the page as text nodes, never as markup.
(function () {
  var errors = [], blocked = 0;
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });
  document.addEventListener("securitypolicyviolation", function () { blocked++; });
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  var VISIBLE_LIMIT = 600;   // nodes one side draws at once; more would make layout sluggish
  var SVGNS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var details = document.getElementById("details");
  var panes = [];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function note(text) {
    var n = document.getElementById("gnote");
    n.hidden = false; n.textContent = text;
  }

  function Pane(side, index, host) {
    this.side = side; this.index = index; this.open = {};
    if (side.open) side.groups.forEach(function (g, i) { this.open[i] = true; }, this);
    var box = el("div", "pane"); box.dataset.side = side.label;
    var head = el("h3", "", side.label + " (" + side.total + " nodes)");
    this.scroll = el("div", "scroll");
    box.appendChild(head); box.appendChild(this.scroll); host.appendChild(box);
    this.box = box;
  }
  Pane.prototype.visible = function (i) {
    var n = this.side.nodes[i], g = n.g;
    // An unchanged Constant is shown in its users' details, not as a box of its own.
    if (n.op === "Constant" && n.s === "kept" && !n.f) return false;
    return g < 0 || (this.open[g] && this.side.groups[g].members !== null);
  };
  Pane.prototype.countVisible = function () {
    var n = 0;
    for (var i = 0; i < this.side.nodes.length; i++) if (this.visible(i)) n++;
    return n;
  };
  Pane.prototype.source = function (vi) {  // the drawn box a value comes out of, or null
    var v = this.side.values[vi];
    if (v.p !== undefined && v.p !== null) {
      var pn = this.side.nodes[v.p];
      return this.visible(v.p) ? "n" + v.p : (pn.g >= 0 && !this.open[pn.g] ? "g" + pn.g : null);
    }
    if (v.g !== undefined) return "g" + v.g;
    return v.k === "input" ? "i" + vi : null;
  };
  Pane.prototype.layout = function () {
    var s = this.side, self = this;
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "TB", nodesep: 16, ranksep: 26, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(function () { return {}; });
    function box(id, label, sub, cls, ref) {
      var w = Math.max(56, 7 * Math.max(label.length, Math.min(sub.length, 28)) + 14);
      g.setNode(id, { width: w, height: sub ? 32 : 22, label: label, sub: sub, cls: cls, ref: ref });
    }
    s.inputs.forEach(function (vi) { box("i" + vi, s.values[vi].n || "input", s.values[vi].t, "n-io", vi); });
    s.groups.forEach(function (grp, gi) {
      if (!self.open[gi] || grp.members === null)
        box("g" + gi, grp.size + " " + grp.kind + " nodes", grp.ops,
            grp.kind === "changed" ? "n-group n-folded-change" : "n-group", gi);
    });
    s.nodes.forEach(function (n, i) {
      if (!self.visible(i)) return;
      var name = n.name.length > 28 ? n.name.slice(0, 27) + "…" : n.name;
      box("n" + i, n.op, name, "n-" + n.s + (n.f ? " n-flag" : ""), i);
    });
    s.nodes.forEach(function (n, i) {
      var to = self.visible(i) ? "n" + i : (n.g >= 0 ? "g" + n.g : null);
      if (!to) return;
      n.i.forEach(function (vi) {
        if (vi < 0) return;
        var from = self.source(vi);
        if (from && from !== to && g.hasNode(from)) g.setEdge(from, to);
      });
    });
    s.outputs.forEach(function (vi) {
      box("o" + vi, s.values[vi].n || "output", "output", "n-io", vi);
      var from = self.source(vi);
      if (from && g.hasNode(from)) g.setEdge(from, "o" + vi);
    });
    dagre.layout(g);
    return g;
  };
  Pane.prototype.render = function () {
    var g = this.layout(), self = this, gg = g.graph();
    var svg = sv("svg", { width: Math.ceil(gg.width || 10), height: Math.ceil(gg.height || 10) });
    g.edges().forEach(function (e) {
      var pts = g.edge(e).points || [];
      var d = pts.map(function (p, k) { return (k ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1); }).join("");
      svg.appendChild(sv("path", { d: d, "class": "edge" }));
    });
    this.elems = {};
    g.nodes().forEach(function (id) {
      var n = g.node(id);
      var grp = sv("g", { "class": "node " + n.cls, transform: "translate(" + (n.x - n.width / 2).toFixed(1) + "," + (n.y - n.height / 2).toFixed(1) + ")" });
      grp.dataset.id = id;
      grp.appendChild(sv("rect", { width: n.width, height: n.height }));
      var t = sv("text", { x: n.width / 2, y: n.sub ? 11 : n.height / 2 }); t.textContent = n.label;
      grp.appendChild(t);
      if (n.sub) {
        var t2 = sv("text", { x: n.width / 2, y: 24, "class": "sub" }); t2.textContent = n.sub;
        grp.appendChild(t2);
      }
      grp.addEventListener("click", function () { self.click(id, n.ref); });
      svg.appendChild(grp);
      self.elems[id] = grp;
    });
    this.scroll.textContent = "";
    this.scroll.appendChild(svg);
    this.focus(g);
  };
  Pane.prototype.focus = function (g) {  // start at the first change, else the top middle
    var best = null, self = this;
    g.nodes().forEach(function (id) {
      var n = g.node(id);
      if (/n-(removed|created|edited|flag)/.test(n.cls) && (!best || n.y < best.y)) best = n;
    });
    var w = this.scroll.clientWidth, h = this.scroll.clientHeight;
    if (best) {
      this.scroll.scrollLeft = Math.max(0, best.x - w / 2);
      this.scroll.scrollTop = Math.max(0, best.y - h / 3);
    } else {
      this.scroll.scrollLeft = Math.max(0, (g.graph().width - w) / 2);
    }
    self.focused = !!best;
  };
  Pane.prototype.click = function (id, ref) {
    if (id[0] === "g") return this.expand(ref);
    if (id[0] === "n") return showNode(this, ref);
    showValue(this, ref);
  };
  Pane.prototype.expand = function (gi) {
    var grp = this.side.groups[gi];
    if (grp.members === null) return note("This region is not in the page: the model is over the drawing limit, so only changed regions are embedded.");
    if (this.countVisible() + grp.size > VISIBLE_LIMIT)
      return note("Not expanded: a side draws at most " + VISIBLE_LIMIT + " nodes at once.");
    this.open[gi] = true;
    this.render();
  };

  function kv(table, k, v) {
    var tr = el("tr"); tr.appendChild(el("th", "", k)); tr.appendChild(el("td", "", v));
    table.appendChild(tr);
  }
  function valueText(side, vi) {
    if (vi < 0) return "(omitted)";
    var v = side.values[vi];
    return (v.n || "(unnamed)") + " : " + v.t + (v.c ? "  = " + v.c : "");
  }
  function showNode(pane, i) {
    var s = pane.side, n = s.nodes[i];
    details.textContent = "";
    details.appendChild(el("h4", "", n.op + (n.name ? "  " + n.name : "")));
    var t = el("table");
    kv(t, "side", s.label); kv(t, "state", n.s);
    var by = n.by !== undefined ? data.prov[n.by] : null;
    if (by) {
      kv(t, "made by pass", by.pass + " (" + by.run + ")");
      if (by.rule) kv(t, "rule", by.rule);
      if (by.reason) kv(t, "reason", by.reason);
      if (by.rewrites) kv(t, "rewrites", by.rewrites + " by this rule in this run");
      by.replaced.forEach(function (r) { kv(t, "rewrite " + r[0] + " replaced", r.slice(1).join(", ")); });
    }
    (n.f || []).forEach(function (f) { kv(t, "finding", f); });
    if (n.dom) kv(t, "domain", n.dom);
    Object.keys(n.a).forEach(function (k) { kv(t, "attr " + k, n.a[k]); });
    n.i.forEach(function (vi, k) { kv(t, "in " + k, valueText(s, vi)); });
    n.o.forEach(function (vi, k) { kv(t, "out " + k, valueText(s, vi)); });
    details.appendChild(t);
  }
  function showValue(pane, vi) {
    details.textContent = "";
    details.appendChild(el("h4", "", "graph input/output"));
    var t = el("table"); kv(t, "value", valueText(pane.side, vi)); details.appendChild(t);
  }

  function search(q) {
    var hits = document.getElementById("hits"), found = [];
    hits.textContent = "";
    panes.forEach(function (p) {
      for (var id in p.elems) p.elems[id].classList.remove("match", "hit");
    });
    q = q.trim().toLowerCase();
    if (!q) return found;
    panes.forEach(function (p) {
      p.side.nodes.forEach(function (n, i) {
        if (n.op.toLowerCase().indexOf(q) < 0 && n.name.toLowerCase().indexOf(q) < 0) return;
        found.push([p, i]);
        var e = p.elems["n" + i];
        if (e) e.classList.add("match");
      });
    });
    found.slice(0, 200).forEach(function (h) {
      var n = h[0].side.nodes[h[1]];
      var b = el("button", "", h[0].side.label + ": " + n.op + (n.name ? " " + n.name : ""));
      b.addEventListener("click", function () { reveal(h[0], h[1]); });
      hits.appendChild(b);
    });
    if (found.length > 200) hits.appendChild(el("span", "", " … " + (found.length - 200) + " more"));
    if (!found.length) hits.appendChild(el("span", "", "no node matches"));
    return found;
  }
  function reveal(pane, i) {
    var g = pane.side.nodes[i].g;
    if (!pane.visible(i) && g >= 0) pane.expand(g);
    var e = pane.elems["n" + i];
    if (e) {  // scroll the pane, not the page
      e.classList.add("hit");
      var box = e.getBBox(), m = e.transform.baseVal.consolidate().matrix;
      pane.scroll.scrollLeft = Math.max(0, m.e + box.width / 2 - pane.scroll.clientWidth / 2);
      pane.scroll.scrollTop = Math.max(0, m.f + box.height / 2 - pane.scroll.clientHeight / 2);
    }
    showNode(pane, i);
    return !!e;
  }

  function legend() {
    var host = document.getElementById("legend"), counts = {};
    data.sides.forEach(function (s, k) {  // a node on both sides counts once (the last side)
      var last = k === data.sides.length - 1;
      s.nodes.forEach(function (n) { if (last || n.s === "removed") counts[n.s] = (counts[n.s] || 0) + 1; });
    });
    ["removed", "created", "edited", "kept"].forEach(function (k) {
      if (counts[k] || k === "kept") host.appendChild(el("span", "l-" + k, k + " " + (counts[k] || 0)));
    });
    host.appendChild(el("span", "l-group", "folded region (click to expand)"));
  }

  function selftest() {  // for tests in a headless browser: results written into the page
    var m = /[#&]selftest(?:=([^&]*))?/.exec(location.hash);  // #selftest=QUERY[&expand]
    if (!m) return;
    var out = { panes: [], errors: errors, blocked: blocked };
    panes.forEach(function (p) {
      var c = {};
      ["kept", "removed", "created", "edited", "group", "io", "flag"].forEach(function (k) {
        c[k] = p.box.querySelectorAll("g.node.n-" + k).length;
      });
      out.panes.push({ label: p.side.label, counts: c, edges: p.box.querySelectorAll("path.edge").length });
    });
    if (m[1]) {
      var q = decodeURIComponent(m[1]), box = document.getElementById("search");
      box.value = q; box.dispatchEvent(new Event("input"));
      out.search = { query: q, hits: document.querySelectorAll("#hits button").length };
      var first = document.querySelector("#hits button");
      if (first) first.click();
      out.search.highlighted = document.querySelectorAll("g.node.hit").length;
      out.search.details = (details.querySelector("h4") || {}).textContent || "";
    }
    if (/[#&]expand/.test(location.hash)) {  // unfold the first folded region of each side
      out.expanded = panes.map(function (p) {
        var g = p.box.querySelector("g.node.n-group"), was = p.box.querySelectorAll("g.node").length;
        if (g) g.dispatchEvent(new MouseEvent("click"));
        return { before: was, after: p.box.querySelectorAll("g.node").length };
      });
    }
    out.resources = performance.getEntriesByType("resource").length;
    out.ms = Math.round(performance.now());
    var pre = document.getElementById("selftest");
    pre.textContent = JSON.stringify(out);
  }

  var host = document.getElementById("panes");
  data.sides.forEach(function (s, k) { panes.push(new Pane(s, k, host)); });
  (data.notes || []).forEach(note);
  legend();
  panes.forEach(function (p) { p.render(); });
  document.getElementById("search").addEventListener("input", function (e) { search(e.target.value); });
  selftest();
})();
