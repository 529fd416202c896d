// Entry point: theme, then the script of the page named on <body data-page>.
import "uplot/dist/uPlot.min.css";
import "./app.css";
import { config } from "./lib/config.js";
import { redrawCharts } from "./lib/charts.js";
import { setupThemeToggle } from "./lib/theme.js";
import { flash } from "./lib/dom.js";
import { extendLogin } from "./lib/login.js";
import { setupClusterSwitch } from "./lib/clusters.js";
import { workersPage } from "./pages/workers.js";
import { workerPage } from "./pages/worker.js";
import { tasksPage } from "./pages/tasks.js";
import { taskPage } from "./pages/task.js";
import { brokerPage } from "./pages/broker.js";
import { graphsPage } from "./pages/graphs.js";
import { auditPage } from "./pages/audit.js";
import { schedulesPage } from "./pages/schedules.js";
import { failuresPage } from "./pages/failures.js";
import { workflowPage } from "./pages/workflow.js";
import { notificationsPage } from "./pages/notifications.js";

const PAGES = {
  workers: workersPage, worker: workerPage, tasks: tasksPage, task: taskPage, broker: brokerPage,
  graphs: graphsPage, audit: auditPage, schedules: schedulesPage, failures: failuresPage, workflow: workflowPage,
  notifications: notificationsPage,
};

setupThemeToggle(redrawCharts);
setupClusterSwitch();
const page = PAGES[config.page];
if (page) {
  extendLogin().then(page).catch((error) => flash(`Could not load the page's data: ${error.message}`, "error"));
}
