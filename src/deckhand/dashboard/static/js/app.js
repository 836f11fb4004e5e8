// Every signed-in page: the navigation, sign-out, then the page's own module.
import { signOut } from "./api.js";
import { errorBox } from "./ui.js";

const body = document.body;
const page = body.dataset.page;

for (const a of document.querySelectorAll(".nav a")) {
  if ((a.dataset.nav || "").split(" ").includes(page)) a.setAttribute("aria-current", "page");
}
// Schedules appear once this server serves GET /v1/schedules.
document.getElementById("nav-schedules").hidden = body.dataset.schedulesApi !== "1";
document.getElementById("sign-out").addEventListener("click", signOut);

const modules = {
  runs: "./runs.js", run: "./run.js", machines: "./machines.js", workflows: "./workflows.js",
  usage: "./usage.js", schedules: "./schedules.js",
};
if (modules[page]) {
  const main = document.getElementById("main");
  import(modules[page])
    .then(m => m.render(main, body.dataset))
    .catch(err => { main.replaceChildren(errorBox(err)); });
}
