from ._interrupt import console

console()
