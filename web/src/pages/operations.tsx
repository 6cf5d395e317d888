export function Operations() {
  return <section class="page"><h1>Operations</h1></section>;
}
