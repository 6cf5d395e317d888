export function Signals() {
  return <section class="page"><h1>Signals</h1></section>;
}
