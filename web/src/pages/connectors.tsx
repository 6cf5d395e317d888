export function Connectors() {
  return <section class="page"><h1>Connectors</h1></section>;
}
