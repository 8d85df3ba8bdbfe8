// Builds the dashboard into OUT (default ../build/dashboard): one script and one stylesheet,
// each named by its content's hash (paddock serve caches /assets/* for a year), and an
// index.html naming them, with no inline script or style (the page's Content-Security-Policy
// allows none).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "build", "dashboard"));
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

const result = await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  write: false,
  outdir: "out",
  legalComments: "none",
});
const script = result.outputFiles.find((f) => f.path.endsWith(".js")).text;
const style = readFileSync(join(here, "src", "style.css"), "utf8");
const named = (text, ext) => `app.${createHash("sha256").update(text).digest("hex").slice(0, 12)}.${ext}`;
const js = named(script, "js");
const css = named(style, "css");
writeFileSync(join(out, "assets", js), script);
writeFileSync(join(out, "assets", css), style);
writeFileSync(
  join(out, "index.html"),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Paddock</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${css}">
<script type="module" src="/assets/${js}"></script>
</head>
<body><main id="app"></main></body>
</html>
`,
);
console.log(`dashboard: ${out} (assets/${js} ${script.length} B, assets/${css} ${style.length} B)`);
