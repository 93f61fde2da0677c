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

  // A side's main graph is a root pane; an expanded If/Loop/Scan body is a pane of its own,
  // listed under its root pane, keyed by its path ("/3.0" = body 0 of node 3, nested further).
  function Pane(side, index, host, root, path, title) {
    this.side = side; this.index = index; this.open = {};
    this.root = root || this; this.path = path || ""; this.views = {};
    if (side.open) side.groups.forEach(function (g, i) { this.open[i] = true; }, this);
    var box = el("div", root ? "pane body" : "pane"); box.dataset.side = side.label;
    var head = el("h3", "", (title || side.label) + " (" + side.total + " nodes)");
    this.scroll = el("div", "scroll");
    box.appendChild(head); box.appendChild(this.scroll);
    this.label = root ? root.side.label : side.label;  // the side: before, after or model
    if (root) { box.dataset.path = path; this.title = title; }
    else { this.bodyHost = el("div", "bodies"); box.appendChild(this.bodyHost); }
    host.appendChild(box);
    this.box = box;
  }
  Pane.prototype.all = function () {  // this pane and its open body panes
    var out = [this], v = this.views;
    Object.keys(v).sort().forEach(function (k) { out.push(v[k]); });
    return out;
  };
  Pane.prototype.bodyKey = function (i, k) { return this.path + "/" + i + "." + k; };
  Pane.prototype.bodiesOpen = function (i) { return !!this.root.views[this.bodyKey(i, 0)]; };
  Pane.prototype.openBodies = function (i) {  // lays each body out now, on first expansion
    var n = this.side.nodes[i], r = this.root, self = this;
    (n.b || []).forEach(function (b, k) {
      var key = self.bodyKey(i, k);
      if (r.views[key]) return;
      if (b.limited) return note("Body " + b.label + " of " + n.op + " " + n.name + " is not in the page: over the drawing limit (" + b.total + " nodes).");
      if (b.nodes.length > VISIBLE_LIMIT) return note("Body " + b.label + " of " + n.op + " " + n.name + " is not drawn: over " + VISIBLE_LIMIT + " nodes.");
      var title = r.side.label + " › " + n.op + (n.name ? " " + n.name : "") + " › " + b.label;
      var p = new Pane(b, self.index, r.bodyHost, r, key, title);
      r.views[key] = p;
      p.render();
    });
    this.mark(i);
  };
  Pane.prototype.closeBodies = function (i) {
    var r = this.root, prefix = this.path + "/" + i + ".";
    Object.keys(r.views).forEach(function (k) {
      if (k.indexOf(prefix) !== 0) return;
      r.bodyHost.removeChild(r.views[k].box);
      delete r.views[k];
    });
    this.mark(i);
  };
  Pane.prototype.toggle = function (i) {
    if (this.bodiesOpen(i)) this.closeBodies(i); else this.openBodies(i);
  };
  Pane.prototype.mark = function (i) {  // the node's [+]/[-] says whether its bodies are drawn
    var e = this.elems && this.elems["n" + i], t = e && e.querySelector("text.toggle");
    if (t) t.textContent = this.bodiesOpen(i) ? "[-]" : "[+]";
  };
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
      if (/n-cf/.test(cls)) w += 24;  // room for the [+] toggle
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
      box("n" + i, n.op, name, "n-" + n.s + (n.f ? " n-flag" : "") + (n.b ? " n-cf" : ""), i);
    });
    s.nodes.forEach(function (n, i) {
      var to = self.visible(i) ? "n" + i : (n.g >= 0 ? "g" + n.g : null);
      if (!to) return;
      n.i.forEach(function (vi) {
        if (vi < 0) return;
        var from = self.source(vi);
        if (from && from[0] === "i" && !g.hasNode(from) && self.path)  // read from an enclosing graph
          box(from, s.values[vi].n || "input", "outer scope", "n-io n-outer", vi);
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
      if (id[0] === "n" && self.side.nodes[n.ref].b) {  // the control-flow node's body toggle
        var tg = sv("text", { x: n.width - 13, y: 11, "class": "toggle" });
        grp.appendChild(tg);
        tg.addEventListener("click", function (ev) { ev.stopPropagation(); self.toggle(n.ref); });
      }
      svg.appendChild(grp);
      self.elems[id] = grp;
    });
    Object.keys(this.elems).forEach(function (id) { if (id[0] === "n") self.mark(+id.slice(1)); });
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
    kv(t, "side", pane.label); if (pane.title) kv(t, "in body", pane.title);
    kv(t, "state", n.s);
    if (n.b) kv(t, "bodies", n.b.map(function (b) { return b.label + " (" + b.total + " nodes)"; }).join(", ") + ": click [+] to draw");
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

  // Every node of a side, bodies included: [root pane, path of [node, body] steps, node, side].
  function walk(pane, fn) {
    (function go(side, steps) {
      side.nodes.forEach(function (n, i) {
        fn(steps, i, side);
        (n.b || []).forEach(function (b, k) { go(b, steps.concat([[i, k]])); });
      });
    })(pane.side, []);
  }
  function allPanes() {
    var out = [];
    panes.forEach(function (p) { out = out.concat(p.all()); });
    return out;
  }
  function search(q) {
    var hits = document.getElementById("hits"), found = [];
    hits.textContent = "";
    allPanes().forEach(function (p) {
      for (var id in p.elems) p.elems[id].classList.remove("match", "hit");
    });
    q = q.trim().toLowerCase();
    if (!q) return found;
    panes.forEach(function (p) {
      walk(p, function (steps, i, side) {
        var n = side.nodes[i];
        if (n.op.toLowerCase().indexOf(q) < 0 && n.name.toLowerCase().indexOf(q) < 0) return;
        found.push([p, steps, i, side]);
        var v = steps.length ? p.views[stepKey(steps)] : p, e = v && v.elems["n" + i];
        if (e) e.classList.add("match");
      });
    });
    found.slice(0, 200).forEach(function (h) {
      var n = h[3].nodes[h[2]], where = h[1].length ? " (in " + h[3].label + ")" : "";
      var b = el("button", "", h[0].label + ": " + n.op + (n.name ? " " + n.name : "") + where);
      b.addEventListener("click", function () { reveal(h[0], h[1], h[2]); });
      hits.appendChild(b);
    });
    if (found.length > 200) hits.appendChild(el("span", "", " … " + (found.length - 200) + " more"));
    if (!found.length) hits.appendChild(el("span", "", "no node matches"));
    return found;
  }
  function stepKey(steps) {
    return steps.map(function (s) { return "/" + s[0] + "." + s[1]; }).join("");
  }
  function reveal(root, steps, i) {  // expands the enclosing regions and bodies first
    var pane = root;
    for (var k = 0; k < steps.length && pane; k++) {
      var at = steps[k][0], g = pane.side.nodes[at].g;
      if (!pane.visible(at) && g >= 0) pane.expand(g);
      pane.openBodies(at);
      pane = root.views[pane.bodyKey(at, steps[k][1])];
    }
    if (!pane) return false;
    var g2 = pane.side.nodes[i].g;
    if (!pane.visible(i) && g2 >= 0) pane.expand(g2);
    var e = pane.elems["n" + i];
    if (e) {  // scroll the pane, not the page
      e.classList.add("hit");
      var box = e.getBBox(), m = e.transform.baseVal.consolidate().matrix;
      pane.scroll.scrollLeft = Math.max(0, m.e + box.width / 2 - pane.scroll.clientWidth / 2);
      pane.scroll.scrollTop = Math.max(0, m.f + box.height / 2 - pane.scroll.clientHeight / 2);
      if (steps.length && pane.box.scrollIntoView) pane.box.scrollIntoView({ block: "nearest" });
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
    var m = /[#&]selftest(?:=([^&]*))?/.exec(location.hash);  // #selftest=QUERY[&expand][&bodies]
    if (!m) return;
    var out = { panes: [], errors: errors, blocked: blocked };
    function counts(p) {
      var c = {};
      ["kept", "removed", "created", "edited", "group", "io", "flag", "cf"].forEach(function (k) {
        c[k] = p.scroll.querySelectorAll("g.node.n-" + k).length;
      });
      return c;
    }
    panes.forEach(function (p) {
      out.panes.push({ label: p.label, counts: counts(p), edges: p.scroll.querySelectorAll("path.edge").length });
    });
    if (m[1]) {
      var q = decodeURIComponent(m[1]), box = document.getElementById("search");
      box.value = q; box.dispatchEvent(new Event("input"));
      out.search = { query: q, hits: document.querySelectorAll("#hits button").length };
      var first = document.querySelector("#hits button");
      if (first) first.click();
      out.search.highlighted = document.querySelectorAll("g.node.hit").length;
      out.search.details = (details.querySelector("h4") || {}).textContent || "";
      out.search.bodies = allPanes().length - panes.length;  // body panes opened to reveal it
    }
    if (/[#&]expand/.test(location.hash)) {  // unfold the first folded region of each side
      out.expanded = panes.map(function (p) {
        var g = p.box.querySelector("g.node.n-group"), was = p.box.querySelectorAll("g.node").length;
        if (g) g.dispatchEvent(new MouseEvent("click"));
        return { before: was, after: p.box.querySelectorAll("g.node").length };
      });
    }
    if (/[#&]bodies/.test(location.hash)) {  // draw every body, nested ones too
      for (var more = true; more;) {
        more = false;
        allPanes().forEach(function (p) {
          p.side.nodes.forEach(function (n, i) {
            if (n.b && !p.bodiesOpen(i)) { p.openBodies(i); more = true; }
          });
        });
      }
      out.bodies = allPanes().filter(function (p) { return p.path; }).map(function (p) {
        return { label: p.label, path: p.path, counts: counts(p), toggles: p.scroll.querySelectorAll("text.toggle").length };
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
