"""An independent pure-Python implementation of icgt's documented random generator, walks and relabellings.

Written from the specification in src/random.hpp (SplitMix64 seeding, xoshiro256**, Lemire's
bounded draw on the upper 32 bits), not from the C++ code, so agreement checks the specification.
"""

MASK64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class ReferenceGenerator:
    def __init__(self, seed):
        state = seed & MASK64
        self.s = []
        for _ in range(4):
            state = (state + 0x9E3779B97F4A7C15) & MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    def next_u64(self):
        s = self.s
        result = (_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def bounded(self, bound):
        product = (self.next_u64() >> 32) * bound
        low = product & 0xFFFFFFFF
        if low < bound:
            threshold = (2**32 - bound) % bound
            while low < threshold:
                product = (self.next_u64() >> 32) * bound
                low = product & 0xFFFFFFFF
        return product >> 32


def reference_walks(neighbours, seed, batch, length, per_node):
    """Walks drawn as documented: walk by walk, start then one bounded draw per step."""
    generator = ReferenceGenerator(seed)
    walks = []
    for b in range(batch):
        node = b % len(neighbours) if per_node else generator.bounded(len(neighbours))
        walk = [node]
        for _ in range(length - 1):
            options = neighbours[node]
            node = options[generator.bounded(len(options))]
            walk.append(node)
        walks.append(walk)
    return walks


def reference_relabellings(n, count, seed):
    """The permutations EnergyMetrics.energy_null_baseline draws: Fisher-Yates from the last place."""
    generator = ReferenceGenerator(seed)
    permutations = []
    for _ in range(count):
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            j = generator.bounded(i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        permutations.append(perm)
    return permutations
