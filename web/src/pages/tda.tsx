export function Tda() {
  return <section class="page"><h1>Tda</h1></section>;
}
