#!/usr/bin/env node
// Parse and validate Adaptive Cards with the official renderer (npm adaptivecards) and print its warnings.
//
// Usage: node validate-cards.js <input.json>
// Input:  {"<name>": <card json>, ...}
// Output: {"<name>": {"warnings": ["..."]}, ...} on stdout, one JSON object.
//
// The package main does not load in Node; dist/adaptivecards.js does, once a DOM is present, so it is
// loaded inside a jsdom window with the window's globals copied onto globalThis first.
"use strict";

const fs = require("fs");
const path = require("path");
const { JSDOM } = require("jsdom");

// Globals the library touches at load and parse time: the window itself, its document and the DOM
// classes (HTMLElement and friends). Node's own globals (Event, URL, ...) are left in place.
const DOM_GLOBAL = /^(HTML|SVG|CSS|DOM|Node|Element|Document|Text|Range|Selection|Mutation|Comment)/;

function installDomGlobals() {
  const dom = new JSDOM("<!DOCTYPE html><html><head></head><body></body></html>", {
    pretendToBeVisual: true,
  });
  const { window } = dom;
  const names = ["window", "document", "navigator", "getComputedStyle"];
  for (const name of Object.getOwnPropertyNames(window)) {
    if (DOM_GLOBAL.test(name)) {
      names.push(name);
    }
  }
  for (const name of names) {
    if (name !== "window" && name !== "document" && name in globalThis) {
      continue;
    }
    const value = name === "window" ? window : window[name];
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  return window;
}

function loadAdaptiveCards() {
  installDomGlobals();
  const entry = require.resolve("adaptivecards/dist/adaptivecards.js", { paths: [__dirname] });
  return require(entry);
}

function enumName(enumType, value) {
  const name = enumType && enumType[value];
  return typeof name === "string" ? name : String(value);
}

function describeSource(source) {
  if (!source || typeof source !== "object") {
    return source === undefined || source === null ? "" : String(source);
  }
  let typeName = "";
  try {
    typeName = typeof source.getJsonTypeName === "function" ? source.getJsonTypeName() : "";
  } catch (_err) {
    typeName = "";
  }
  const id = typeof source.id === "string" && source.id ? `#${source.id}` : "";
  return `${typeName}${id}`;
}

function formatEvent(AC, event) {
  const phase = enumName(AC.ValidationPhase, event.phase);
  const kind = enumName(AC.ValidationEvent, event.event);
  const where = describeSource(event.source);
  return `${phase}/${kind}${where ? ` [${where}]` : ""}: ${event.message}`;
}

function validateCard(AC, json) {
  const warnings = [];
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    return ["Input/Other: card is not a JSON object"];
  }
  const card = new AC.AdaptiveCard();
  // Teams renders schema 1.5; anything newer is reported as unsupported.
  const context = new AC.SerializationContext(AC.Versions.v1_5);
  card.parse(json, context);
  for (let i = 0; i < context.eventCount; i++) {
    warnings.push(formatEvent(AC, context.getEventAt(i)));
  }
  const results = card.validateProperties();
  for (const event of results.validationEvents) {
    warnings.push(formatEvent(AC, event));
  }
  return warnings;
}

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write("usage: node validate-cards.js <input.json>\n");
    return 2;
  }
  const cards = JSON.parse(fs.readFileSync(path.resolve(argv[0]), "utf8"));
  if (!cards || typeof cards !== "object" || Array.isArray(cards)) {
    process.stderr.write("input must be a JSON object mapping names to cards\n");
    return 2;
  }
  const AC = loadAdaptiveCards();
  const output = {};
  for (const [name, json] of Object.entries(cards)) {
    try {
      output[name] = { warnings: validateCard(AC, json) };
    } catch (err) {
      output[name] = { warnings: [`Parse/Exception: ${err && err.stack ? err.stack : err}`] };
    }
  }
  process.stdout.write(JSON.stringify(output));
  process.stdout.write("\n");
  return 0;
}

process.exitCode = main(process.argv.slice(2));
