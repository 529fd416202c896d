// Light or dark: follows the system until the user picks one, then remembers the choice.
const KEY = "celery-monitor-theme";

export function currentTheme() {
  const chosen = localStorage.getItem(KEY);
  if (chosen === "light" || chosen === "dark") return chosen;
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme() {
  document.documentElement.dataset.theme = currentTheme();
}

export function setupThemeToggle(onChange) {
  applyTheme();
  const button = document.getElementById("theme");
  if (!button) return;
  button.addEventListener("click", () => {
    localStorage.setItem(KEY, currentTheme() === "dark" ? "light" : "dark");
    applyTheme();
    if (onChange) onChange();
  });
}
