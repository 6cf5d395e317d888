// Light and dark themes: the system's choice unless the user picked one
// (kept in localStorage). Charts read the CSS variables through `cssVar`.
import { useEffect, useState } from "preact/hooks";

export type Theme = "light" | "dark";
const KEY = "marketd.theme";
const listeners = new Set<() => void>();

export function currentTheme(): Theme {
  const t = localStorage.getItem(KEY);
  if (t === "light" || t === "dark") return t;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

export function applyTheme() {
  document.documentElement.dataset.theme = currentTheme();
  for (const l of listeners) l();
}

export function toggleTheme() {
  localStorage.setItem(KEY, currentTheme() === "dark" ? "light" : "dark");
  applyTheme();
}

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

/** The value of a CSS custom property on the root (colours for canvases). */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Re-renders when the theme changes; returns it. */
export function useTheme(): Theme {
  const [t, set] = useState(currentTheme);
  useEffect(() => {
    const l = () => set(currentTheme());
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return t;
}
