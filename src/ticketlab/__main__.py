from ._console import console

console()
