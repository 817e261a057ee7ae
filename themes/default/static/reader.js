/* Serialist reader script: settings panel, "Show warnings", continue reading, ← / → keys.
 *
 * Progressive enhancement: every page is complete without it. The saved settings are applied before the
 * first paint by the small script in <head> (_reader_head.html); this file runs after the page is parsed.
 * Everything is kept in localStorage under keys that start with the site's base path (`/repo/…`), so two
 * sites on one domain do not share them, and nothing breaks when storage is unavailable or throws.
 * No requests, no tracking: nothing leaves the reader's browser.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var html = document.documentElement;
  var PREFIX = (script && script.getAttribute("data-prefix")) || "/";
  var ROOT = (script && script.getAttribute("data-root")) || "";
  var SETTINGS_KEY = PREFIX + "reader-settings";
  var PROGRESS_KEY = PREFIX + "progress:"; // + the story's slug
  var RESUME = "#resume";

  // Keep in step with the script in _reader_head.html and the controls in _settings.html.
  var DEFAULTS = {size: 100, width: "medium", font: "serif", theme: "auto", notes: "shown", warnings: "shown", keys: "on"};
  var CHOICES = {
    width: ["narrow", "medium", "wide"],
    font: ["serif", "sans", "dyslexia"],
    theme: ["auto", "light", "dark"],
    notes: ["shown", "hidden"],
    warnings: ["shown", "hidden"],
    keys: ["on", "off"]
  };

  // --- storage: every access may throw (private browsing, storage disabled, quota) ---------------------

  function read(key) {
    try {
      var text = window.localStorage.getItem(key);
      return text ? JSON.parse(text) : null;
    } catch (e) {
      return null;
    }
  }

  function write(key, value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, JSON.stringify(value));
      }
    } catch (e) {
      // Not saved; the page goes on working with the setting for as long as it is open.
    }
  }

  // --- settings ------------------------------------------------------------------------------------

  function clean(saved) {
    var settings = {};
    var key;
    for (key in DEFAULTS) settings[key] = DEFAULTS[key];
    if (!saved || typeof saved !== "object") return settings;
    for (key in CHOICES) {
      if (CHOICES[key].indexOf(saved[key]) >= 0) settings[key] = saved[key];
    }
    var size = Math.round(+saved.size);
    if (size >= 80 && size <= 200) settings.size = size;
    return settings;
  }

  var settings = clean(read(SETTINGS_KEY));

  function apply(s) {
    for (var key in CHOICES) {
      if (s[key] === DEFAULTS[key]) {
        html.removeAttribute("data-" + key);
      } else {
        html.setAttribute("data-" + key, s[key]);
      }
    }
    if (s.size === DEFAULTS.size) {
      html.removeAttribute("data-size");
      html.style.removeProperty("--font-scale");
    } else {
      html.setAttribute("data-size", String(s.size));
      html.style.setProperty("--font-scale", String(s.size / 100));
    }
  }

  function isDefault(s) {
    for (var key in DEFAULTS) if (s[key] !== DEFAULTS[key]) return false;
    return true;
  }

  function setupPanel() {
    var form = document.getElementById("reader-settings-form");
    if (!form) return;
    var fields = {};
    ["size", "notes", "warnings", "keys"].forEach(function (name) {
      fields[name] = form.elements.namedItem(name); // (not `form.elements.keys`: collections have methods)
    });

    function show(s) {
      if (fields.size) fields.size.value = String(s.size);
      ["width", "font", "theme"].forEach(function (name) {
        var radios = form.querySelectorAll('input[name="' + name + '"]');
        for (var i = 0; i < radios.length; i++) radios[i].checked = radios[i].value === s[name];
      });
      if (fields.notes) fields.notes.checked = s.notes === "shown";
      if (fields.warnings) fields.warnings.checked = s.warnings === "shown";
      if (fields.keys) fields.keys.checked = s.keys === "on";
    }

    function chosen(name) {
      var radio = form.querySelector('input[name="' + name + '"]:checked');
      return radio ? radio.value : DEFAULTS[name];
    }

    function update() {
      settings = clean({
        size: fields.size ? +fields.size.value : DEFAULTS.size,
        width: chosen("width"),
        font: chosen("font"),
        theme: chosen("theme"),
        notes: fields.notes && !fields.notes.checked ? "hidden" : "shown",
        warnings: fields.warnings && !fields.warnings.checked ? "hidden" : "shown",
        keys: fields.keys && !fields.keys.checked ? "off" : "on"
      });
      apply(settings);
      write(SETTINGS_KEY, isDefault(settings) ? null : settings);
    }

    show(settings);
    form.addEventListener("change", update);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    var reset = form.querySelector(".reader-settings-reset");
    if (reset) {
      reset.addEventListener("click", function () {
        show(clean(null));
        update();
      });
    }
    var panel = document.getElementById("reader-settings");
    if (panel) panel.hidden = false; // CSS already shows it when `html.js`; this is for themes that do not
  }

  // --- chapter warnings hidden as spoilers -------------------------------------------------------------

  function setupWarnings() {
    var buttons = document.querySelectorAll(".show-warnings");
    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        var box = button.closest(".chapter-warnings");
        if (!box) return;
        box.classList.add("is-revealed");
        button.setAttribute("aria-expanded", "true");
        var list = document.getElementById(button.getAttribute("aria-controls"));
        if (list) list.focus();
      });
    });
  }

  // --- continue reading --------------------------------------------------------------------------------

  function safePath(path) {
    // A path inside the site, relative to its root: no scheme, no leading slash, no way up.
    return typeof path === "string" && path.length > 0 && path.length < 500 &&
      !/[:\\?#]|^\/|(^|\/)\.\.(\/|$)/.test(path);
  }

  function scrollRange() {
    return Math.max(1, document.documentElement.scrollHeight - window.innerHeight);
  }

  function setupProgress() {
    var article = document.querySelector("[data-progress-story]");
    if (!article) return;
    var story = article.getAttribute("data-progress-story");
    var path = article.getAttribute("data-progress-path");
    var heading = article.getAttribute("data-progress-heading") || "";
    if (!story || !safePath(path)) return;
    var key = PROGRESS_KEY + story;

    if (window.location.hash === RESUME) {
      var saved = read(key);
      try {
        history.replaceState(history.state, "", window.location.href.slice(0, -RESUME.length));
      } catch (e) {
        // Leave the address as it is.
      }
      if (saved && saved.path === path) {
        var restore = function () {
          var y = typeof saved.f === "number" ? saved.f * scrollRange() : +saved.y || 0;
          window.scrollTo(0, Math.round(y));
        };
        restore();
        if (document.readyState !== "complete") {
          var restoredAt = window.scrollY;
          window.addEventListener("load", function () {
            if (window.scrollY === restoredAt) restore(); // late images may have moved the text
          });
        }
      }
    }

    function save() {
      timer = 0;
      write(key, {
        path: path,
        heading: heading,
        y: Math.round(window.scrollY),
        f: Math.round(window.scrollY / scrollRange() * 10000) / 10000,
        t: Date.now()
      });
    }

    var timer = 0;
    window.addEventListener("scroll", function () {
      if (!timer) timer = window.setTimeout(save, 300);
    }, {passive: true});
    window.addEventListener("pagehide", save);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") save();
    });
    save();
  }

  function setupContinueLinks() {
    var places = document.querySelectorAll("[data-continue]");
    Array.prototype.forEach.call(places, function (place) {
      var saved = read(PROGRESS_KEY + place.getAttribute("data-continue"));
      if (!saved || !safePath(saved.path)) return;
      var link = document.createElement("a");
      link.href = ROOT + saved.path + RESUME;
      link.className = "continue-link";
      link.textContent = "Continue reading: " + (typeof saved.heading === "string" && saved.heading ? saved.heading : "where you left off");
      place.textContent = "";
      place.appendChild(link);
      place.hidden = false;
    });
  }

  // --- ← / → keys --------------------------------------------------------------------------------------

  function inFormField(target) {
    if (!target || target.nodeType !== 1) return false;
    if (target.isContentEditable) return true;
    return !!target.closest("input, textarea, select, [contenteditable]:not([contenteditable='false'])");
  }

  function setupKeys() {
    document.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      if (event.defaultPrevented || event.isComposing) return;
      if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      if (settings.keys === "off" || inFormField(event.target)) return;
      var link = document.querySelector('link[rel="' + (event.key === "ArrowLeft" ? "prev" : "next") + '"][href]');
      if (!link) return; // the first or last chapter, or not a chapter page
      event.preventDefault();
      window.location.href = link.href;
    });
  }

  apply(settings);
  setupPanel();
  setupWarnings();
  setupProgress();
  setupContinueLinks();
  setupKeys();
})();
