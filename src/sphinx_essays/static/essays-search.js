/* Infrastructure Essays: search as you type, and the search page.
 *
 * The index (sphinx_essays/search.py) is split into small files; nothing
 * loads until a reader starts a search, and then only what the query needs:
 * the stemmer, one postings shard per word, the title blocks of the hits
 * shown and one excerpt file per hit. No page is fetched to show a result.
 *
 * The sidebar box is an ARIA 1.2 combobox: results appear while typing; "/"
 * focuses it; ArrowDown/ArrowUp move through the results; Enter opens the
 * active one (with none active, the form opens the search page); Escape
 * closes the list and keeps focus in the box. A status line announces the
 * count. A query that names a glossary term shows its definition first.
 * Each hit shows the essay, the section it matched (linking to that
 * heading), an excerpt with the matching words marked, and the topic.
 * Without a query, the search page lists every essay of a topic, a tag or
 * a month (?topic=, ?tag=, ?month=YYYY-MM), newest first: the rest of a
 * list another page cut short (overflow.py).
 * Without JavaScript the form still opens search.html. CSP-safe: no inline
 * script or style, and no HTML built from strings.
 */
(function () {
  "use strict";

  const SHOWN = 5; // hits in the sidebar list
  const PAGE = 10; // hits per "More results" on the search page
  const OTHER_SECTIONS = 0.25; // how much an essay's other sections add
  const PREFIX = 0.7; // a word completed from what is typed counts less

  // -- Loading ----------------------------------------------------------------

  const engines = new Map();

  function engine(form) {
    const base = new URL(form.dataset.essaysSearch + "/", document.baseURI);
    const key = base.href;
    if (!engines.has(key)) engines.set(key, createEngine(base));
    return engines.get(key);
  }

  function createEngine(base) {
    const files = new Map();
    function json(name) {
      if (!files.has(name)) {
        files.set(
          name,
          fetch(new URL(name, base)).then((response) => {
            if (!response.ok) throw new Error(`${name}: ${response.status}`);
            return response.json();
          }),
        );
      }
      return files.get(name);
    }
    const ready = Promise.all([
      json("index.json"),
      new Promise((resolve, reject) => {
        if (window.Stemmer) return resolve();
        const script = document.createElement("script");
        script.src = new URL("stemmer.js", base).href;
        script.onload = resolve;
        script.onerror = reject;
        document.head.append(script);
      }),
    ]).then(([meta]) => {
      if (meta.version !== 1) throw new Error("unknown search index");
      return { meta, stopwords: new Set(meta.stopwords), stemmer: new window.Stemmer() };
    });
    return { base, json, ready };
  }

  // Must match search.shard_of: 32-bit FNV-1a of the stem's first 3 letters.
  function shardOf(stem, shards) {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(Array.from(stem).slice(0, 3).join(""))) {
      hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    }
    return hash % shards;
  }

  // Must match search.words: \w+ words, lower case, no stop words, no
  // one-letter words, no numbers under three digits; Snowball stems.
  function terms(state, query) {
    const found = [];
    for (const word of query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []) {
      if (state.stopwords.has(word) || word.length < 2) continue;
      if (/^\d+$/.test(word) && word.length < 3) continue;
      found.push({ word, stem: state.stemmer.stemWord(word) });
    }
    return found;
  }

  /* Rank items for *query*: each term's postings are summed per section;
   * an item must hold every term somewhere (else any term will do); its
   * score is its card, its best section and a share of the rest. The last
   * word, while it is being typed, also matches the stems it begins. */
  async function rank(form, query, typing) {
    const eng = engine(form);
    const state = await eng.ready;
    const wanted = terms(state, query);
    if (!wanted.length) return { state, ranked: [], wanted };
    const shards = await Promise.all(
      wanted.map((t) => eng.json(`p/${shardOf(t.stem, state.meta.shards)}.json`)),
    );
    const perItem = new Map(); // item -> { sections: Map, terms: Set }
    wanted.forEach((term, position) => {
      const shard = shards[position];
      const matches = [[term.stem, 1]];
      if (typing && position === wanted.length - 1) {
        for (const stem of Object.keys(shard)) {
          if (stem !== term.stem && (stem.startsWith(term.word) || stem.startsWith(term.stem))) {
            matches.push([stem, PREFIX]);
          }
        }
      }
      for (const [stem, weight] of matches) {
        const flat = shard[stem];
        if (!flat) continue;
        for (let i = 0; i < flat.length; i += 3) {
          const item = flat[i];
          const section = flat[i + 1];
          const score = flat[i + 2] * weight;
          if (!perItem.has(item)) perItem.set(item, { sections: new Map(), terms: new Set() });
          const entry = perItem.get(item);
          entry.terms.add(position);
          entry.sections.set(section, (entry.sections.get(section) || 0) + score);
        }
      }
    });
    const all = [...perItem.entries()];
    const complete = all.filter(([, e]) => e.terms.size === wanted.length);
    const ranked = (complete.length ? complete : all).map(([item, entry]) => {
      let best = -1;
      let bestScore = 0;
      let rest = 0;
      const card = entry.sections.get(0) || 0;
      for (const [section, score] of entry.sections) {
        if (section === 0) continue;
        rest += score;
        if (score > bestScore) {
          best = section;
          bestScore = score;
        }
      }
      rest -= bestScore;
      return {
        item,
        section: best >= 0 ? best : 0,
        score: card + bestScore + OTHER_SECTIONS * rest,
      };
    });
    ranked.sort((a, b) => b.score - a.score || a.item - b.item);
    return { state, ranked, wanted };
  }

  async function describe(form, state, hit, wanted) {
    const eng = engine(form);
    const block = await eng.json(`i/${Math.floor(hit.item / state.meta.block)}.json`);
    const [kind, title, url, topic, tags, anchors, headings] =
      block[hit.item % state.meta.block];
    const text = await eng.json(`t/${hit.item}/${hit.section}.json`);
    const anchor = anchors[hit.section];
    // The root page's address, whatever the page's depth (the 404 page links
    // from the site root): the site's root is the folder it is in.
    const root = new URL("./", new URL(form.dataset.essaysRoot, document.baseURI));
    const href = new URL(url + (anchor && kind === "essay" && hit.section > 0 ? `#${anchor}` : ""), root).href;
    return {
      kind,
      title,
      href,
      topic,
      tags,
      heading: hit.section > 0 ? headings[hit.section] : "",
      excerpt: excerpt(state, text, wanted),
    };
  }

  // -- Showing ------------------------------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* About 26 words around the first matching word, the matches marked. */
  function excerpt(state, text, wanted) {
    const stems = new Set(wanted.map((t) => t.stem));
    const prefixes = wanted.map((t) => t.word);
    const tokens = text.split(/(\s+)/);
    const matches = (token) => {
      const word = (token.toLowerCase().match(/[\p{L}\p{N}_]+/u) || [""])[0];
      if (!word) return false;
      return stems.has(state.stemmer.stemWord(word)) || prefixes.some((p) => p.length > 2 && word.startsWith(p));
    };
    let first = tokens.findIndex((token) => /\S/.test(token) && matches(token));
    if (first < 0) first = 0;
    const start = Math.max(0, first - 16);
    const end = Math.min(tokens.length, first + 36);
    const out = element("span", "essays-search-excerpt");
    if (start > 0) out.append("… ");
    for (const token of tokens.slice(start, end)) {
      if (/\S/.test(token) && matches(token)) out.append(element("mark", "", token));
      else out.append(token);
    }
    if (end < tokens.length) out.append(" …");
    return out;
  }

  function topicName(topic) {
    return topic ? topic.charAt(0).toUpperCase() + topic.slice(1) : "";
  }

  function normal(text) {
    return text.toLowerCase().replace(/\s+/g, " ").trim();
  }

  /* The glossary term the query names, if any, and the essays. */
  async function answer(form, query, typing, filter) {
    const { state, ranked, wanted } = await rank(form, query, typing);
    const essays = [];
    let term = null;
    for (const hit of ranked) {
      if (hit.item >= state.meta.essays) {
        if (!term) term = hit;
      } else if (!filter || (await filter(hit.item))) {
        essays.push(hit);
      }
    }
    let definition = null;
    if (term) {
      const described = await describe(form, state, term, wanted);
      if (normal(described.title) === normal(query)) definition = described;
    }
    return { state, wanted, essays, definition };
  }

  // -- The sidebar combobox ------------------------------------------------------

  function combobox(form) {
    const input = form.querySelector("input[name=q]");
    const list = form.querySelector(".essays-search-results");
    const status = form.querySelector(".essays-search-status");
    let active = -1;
    let timer = null;
    let asked = 0;

    const options = () => Array.from(list.querySelectorAll("[role=option]"));

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
      options().forEach((o) => o.setAttribute("aria-selected", "false"));
    }

    function open() {
      if (!options().length) return;
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function activate(index) {
      const all = options();
      all.forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
      active = index;
      if (index >= 0) {
        input.setAttribute("aria-activedescendant", all[index].id);
        all[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function option(id, hit, label) {
      const li = element("li", "essays-search-option");
      li.id = id;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.href = hit.href;
      li.append(element("span", "essays-search-title", hit.title));
      const where = label || hit.heading;
      if (where) li.append(element("span", "essays-search-section", where));
      if (hit.excerpt) li.append(hit.excerpt);
      if (hit.topic) li.append(element("span", "essays-search-topic", topicName(hit.topic)));
      li.addEventListener("mousedown", (event) => event.preventDefault());
      li.addEventListener("click", () => window.location.assign(li.dataset.href));
      return li;
    }

    async function run() {
      const query = input.value;
      const mine = ++asked;
      if (query.trim().length < 2) {
        close();
        list.replaceChildren();
        status.textContent = "";
        return;
      }
      const typing = !/\s$/.test(query);
      const found = await answer(form, query.trim(), typing);
      const hits = await Promise.all(
        found.essays.slice(0, SHOWN).map((hit) => describe(form, found.state, hit, found.wanted)),
      );
      if (mine !== asked) return; // a newer query has been typed
      const items = [];
      if (found.definition) items.push(option("essays-search-answer", found.definition, "Glossary"));
      hits.forEach((hit, i) => items.push(option(`essays-search-option-${i}`, hit)));
      if (found.essays.length > SHOWN) {
        const more = element("li", "essays-search-option essays-search-all");
        more.id = "essays-search-all";
        more.setAttribute("role", "option");
        more.setAttribute("aria-selected", "false");
        more.dataset.href = `${form.action}?q=${encodeURIComponent(query.trim())}`;
        more.textContent = `All ${found.essays.length} essays`;
        more.addEventListener("mousedown", (event) => event.preventDefault());
        more.addEventListener("click", () => window.location.assign(more.dataset.href));
        items.push(more);
      }
      list.replaceChildren(...items);
      active = -1;
      if (items.length) open();
      else close();
      const n = found.essays.length;
      const parts = [];
      if (found.definition) parts.push("a glossary definition");
      parts.push(n === 0 ? "no essays" : `${n} essay${n === 1 ? "" : "s"}`);
      status.textContent = `${parts.join(" and ")} for ${query.trim()}`;
    }

    input.addEventListener("focus", () => engine(form).ready.catch(() => {}), { once: true });
    input.addEventListener("input", () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => run().catch((error) => {
        status.textContent = "Search is unavailable.";
        console.warn(error);
      }), 120);
    });
    input.addEventListener("keydown", (event) => {
      const all = options();
      if (event.key === "ArrowDown" && all.length) {
        event.preventDefault();
        open();
        activate(Math.min(active + 1, all.length - 1));
      } else if (event.key === "ArrowUp" && all.length) {
        event.preventDefault();
        activate(Math.max(active - 1, -1));
      } else if (event.key === "Enter" && active >= 0 && !list.hidden) {
        event.preventDefault();
        window.location.assign(all[active].dataset.href);
      } else if (event.key === "Escape" && !list.hidden) {
        event.preventDefault();
        event.stopPropagation();
        close();
      }
    });
    input.addEventListener("blur", () => window.setTimeout(close, 150));
  }

  // -- The search page -------------------------------------------------------------

  async function searchPage(form) {
    const input = form.querySelector("input[name=q]");
    const topic = form.querySelector("select[name=topic]");
    const tag = form.querySelector("select[name=tag]");
    const status = document.querySelector(".essays-search-page-status");
    const answerBox = document.querySelector(".essays-search-page-answer");
    const list = document.querySelector(".essays-search-page-results");
    const more = document.querySelector(".essays-search-page-more");
    const params = new URLSearchParams(window.location.search);
    input.value = params.get("q") || "";

    const eng = engine(form);
    const facets = await eng.json("facets.json");
    for (const [select, values, name] of [
      [topic, facets.topics, "topic"],
      [tag, facets.tags, "tag"],
    ]) {
      for (const value of values) {
        const choice = element("option", "", value);
        choice.value = value;
        select.append(choice);
      }
      select.value = params.get(name) || "";
      select.addEventListener("change", () => form.requestSubmit());
    }
    form.querySelector(".essays-search-filters").classList.remove("essays-search-pending");

    const query = input.value.trim();
    const month = params.get("month") || "";
    if (month) {
      // No control chooses a month: keep it when a select resubmits the form.
      const keep = element("input");
      keep.type = "hidden";
      keep.name = "month";
      keep.value = month;
      form.append(keep);
    }
    const wantTopic = facets.topics.indexOf(topic.value);
    const wantTag = facets.tags.indexOf(tag.value);
    const wantMonth = facets.month_names.indexOf(month);
    const chosen = (item) => {
      const [itemTopic, ...itemTags] = facets.items[item];
      return (
        (wantTopic < 0 || itemTopic === wantTopic) &&
        (wantTag < 0 || itemTags.includes(wantTag)) &&
        (wantMonth < 0 || facets.months[item] === wantMonth)
      );
    };
    const filtered = wantTopic >= 0 || wantTag >= 0 || wantMonth >= 0;
    if (!query && !filtered) {
      status.textContent = "Type a word or a phrase, then press Enter.";
      return;
    }
    // Without a query, a filter lists every essay it keeps, newest first:
    // where a long list on another page links its rest (overflow.py).
    const found = query
      ? await answer(form, query, false, filtered ? async (item) => chosen(item) : null)
      : {
          state: await eng.ready,
          wanted: [],
          definition: null,
          essays: facets.newest.filter(chosen).map((item) => ({ item, section: 0 })),
        };
    const what = [topic.value && `in ${topicName(topic.value)}`, tag.value && `tagged ${tag.value}`, wantMonth >= 0 && `from ${month}`]
      .filter(Boolean)
      .join(", ");
    if (found.definition) {
      const link = element("a", "", found.definition.title);
      link.href = found.definition.href;
      const heading = element("p", "essays-search-page-answer-title");
      heading.append(element("strong", "", "Glossary: "), link);
      const text = element("p");
      text.append(found.definition.excerpt);
      answerBox.replaceChildren(heading, text);
    }
    let shown = 0;
    async function next() {
      const slice = found.essays.slice(shown, shown + PAGE);
      const hits = await Promise.all(slice.map((hit) => describe(form, found.state, hit, found.wanted)));
      const items = hits.map((hit) => {
        const item = element("li", "essays-search-page-result");
        const head = element("p");
        const title = element("a", "essays-search-title", hit.title);
        title.href = hit.href.split("#")[0];
        head.append(title);
        if (hit.topic) head.append(element("span", "essays-search-topic", topicName(hit.topic)));
        const body = element("p");
        if (hit.heading) {
          const where = element("a", "essays-search-section", hit.heading);
          where.href = hit.href;
          body.append(where, ": ");
        }
        body.append(hit.excerpt);
        item.append(head, body);
        return item;
      });
      // The answer and the first results appear together, in one frame, so
      // the list's reserved space never moves under the reader.
      if (found.definition) answerBox.hidden = false;
      list.append(...items);
      shown += slice.length;
      more.hidden = shown >= found.essays.length;
    }
    await next();
    more.querySelector("button").addEventListener("click", next);
    const n = found.essays.length;
    const essays = `${n} essay${n === 1 ? "" : "s"}`;
    if (query) status.textContent = n === 0 ? `No essays match ${query}.` : `${essays} match ${query}.`;
    else status.textContent = n === 0 ? `No essays ${what}.` : `${essays} ${what}, newest first.`;
  }

  // -- Wiring ----------------------------------------------------------------------

  document.querySelectorAll("form.essays-search-form").forEach(combobox);
  const page = document.querySelector("form.essays-search-page-form");
  if (page) {
    searchPage(page).catch((error) => {
      document.querySelector(".essays-search-page-status").textContent = "Search is unavailable.";
      console.warn(error);
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    const box = document.querySelector("form.essays-search-form input[name=q]");
    if (!box) return;
    event.preventDefault();
    // On a phone the box is in the closed navigation drawer: open it first.
    if (box.offsetParent === null) {
      const toggle = document.querySelector('[data-drawer="__navigation"]');
      if (toggle) toggle.click();
    }
    box.focus();
  });
})();
