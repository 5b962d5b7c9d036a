"""The paper's 4x4 grid of concept words: walks as in-context text, and the spectral embedding that the
energy-minimisation theory predicts the model's representations will align with."""

import icgt

WORDS = "apple bird car egg house milk plane opera box sand sun mango rock math code phone".split()

grid = icgt.Graph.square_grid(4, 4)
grid.labels = WORDS
walks = icgt.WalkSampler(grid, seed=0).random_walks(16, 1400, start="per_node")
print(f"{walks.shape[0]} walks of {walks.shape[1]} words; the first begins:")
print("".join(" " + grid.labels[node] for node in walks[0, :20]), "...")

embedding = grid.spectral_embedding(2)
print("z2, z3 eigenvalues:", embedding.eigenvalues.round(4))
for row in range(4):
    print("  ".join(f"{word:>6}:({x:+.2f},{y:+.2f})" for word, (x, y) in
                    zip(WORDS[4 * row: 4 * row + 4], embedding.eigenvectors[4 * row: 4 * row + 4])))
