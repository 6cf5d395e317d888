export function Board() {
  return <section class="page"><h1>Board</h1></section>;
}
