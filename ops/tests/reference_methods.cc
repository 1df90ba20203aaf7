#include "reference_methods.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ortsparse::testing {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

double Dot(const double* a, const double* b, int64_t n) {
  double sum = 0.0;
  for (int64_t d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

std::vector<double> Project(const ReferenceMethod& m, int64_t kv_head, const double* x, int64_t D) {
  std::vector<double> out(m.rank);
  for (int64_t i = 0; i < m.rank; ++i) out[i] = Dot(&m.pca_basis[(kv_head * D + i) * D], x, D);
  return out;
}

int64_t NearestCentroid(const ReferenceMethod& m, int64_t kv_head, const double* x, int64_t D) {
  std::vector<double> similarity(m.clusters);
  for (int64_t c = 0; c < m.clusters; ++c) similarity[c] = Dot(&m.centroids[(kv_head * m.clusters + c) * D], x, D);
  return std::max_element(similarity.begin(), similarity.end()) - similarity.begin();  // the first maximum
}

int64_t Bucket(const ReferenceMethod& m, int64_t kv_head, int64_t round, const double* x, int64_t D) {
  const int64_t half = m.hash_half_buckets;
  const double* W = &m.hash_projections[(kv_head * m.hash_rounds + round) * D * half];
  std::vector<double> values(2 * half);
  for (int64_t i = 0; i < half; ++i) {
    double product = 0.0;
    for (int64_t d = 0; d < D; ++d) product += x[d] * W[d * half + i];
    values[i] = product;
    values[half + i] = -product;
  }
  return std::max_element(values.begin(), values.end()) - values.begin();
}

// Everything one step's selection reads.
struct Step {
  const ReferenceProblem& p;
  const ReferenceMethod& m;
  const std::vector<double>& present_key;
  const std::vector<double>& state;
  ReferenceSequences seq;
  int64_t T_cap, D, group, state_rows, state_width;
  double scale;

  const double* CachedKey(int64_t b, int64_t h, int64_t j) const {
    return &present_key[((b * p.kv_num_heads + h) * T_cap + j) * D];
  }
  const double* StateRow(int64_t b, int64_t h, int64_t row) const {
    return &state[((b * p.kv_num_heads + h) * state_rows + row) * state_width];
  }
  const double* RawQuery(int64_t b, int64_t i, int64_t h) const {
    return &p.query[((b * p.query_length + i) * p.num_heads + h) * D];
  }
  bool HiddenFromGroup(int64_t b, int64_t i, int64_t kv_head, int64_t j) const {
    if (p.mask == MaskKind::kNone) return false;
    for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
      const double value = MaskAt(p, b, h, i, j);
      if (p.mask == MaskKind::kBool ? value != 0.0 : value != -kInfinity) return false;
    }
    return true;
  }
};

// The k best of `candidates` by (score, then the position order the method wants).
std::vector<int64_t> TopK(std::vector<int64_t> candidates, const std::vector<double>& score, int64_t k,
                          bool later_first) {
  std::sort(candidates.begin(), candidates.end(), [&](int64_t a, int64_t b) {
    if (score[a] != score[b]) return score[a] > score[b];
    return later_first ? a > b : a < b;
  });
  candidates.resize(std::min<int64_t>(k, candidates.size()));
  return candidates;
}

// The keys row i of sequence b attends for KV head `kv_head` under a method that selects per group.
std::vector<uint8_t> GroupSelection(const Step& s, int64_t b, int64_t i, int64_t kv_head) {
  const ReferenceProblem& p = s.p;
  const ReferenceMethod& m = s.m;
  std::vector<uint8_t> keys(s.T_cap, 0);
  int64_t begin = s.T_cap, end = 0;
  for (int64_t j = 0; j < s.T_cap; ++j) {
    if (Sees(p, s.seq, b, i, j)) {
      begin = std::min(begin, j);
      end = j + 1;
    }
  }
  const int64_t n = std::max<int64_t>(0, end - begin);
  const bool prefill = p.query_length > 1;
  const bool sparse_prefill = m.name == "hash" || m.name == "hyper";
  const bool exact = m.name == "dense" || m.name == "block" || (prefill && !sparse_prefill) ||
                     (!prefill && m.name == "hyper") || n < m.dense_below;
  if (exact) {
    std::fill(keys.begin() + begin, keys.begin() + std::max(begin, end), 1);
    return keys;
  }
  const int64_t sink_end = std::min(end, begin + m.sink);
  const int64_t middle_begin = sink_end, middle_end = std::max(sink_end, end - m.window);
  for (int64_t j = begin; j < end; ++j) keys[j] = j < middle_begin || j >= middle_end;
  if (m.name == "streaming") return keys;
  const float budget = m.budget;
  const int64_t k = std::min(budget <= 1.0f ? static_cast<int64_t>(std::ceil(budget * static_cast<float>(n)))
                                            : static_cast<int64_t>(std::floor(budget)),
                             middle_end - middle_begin);
  std::vector<int64_t> unmasked;  // middle keys some head of the group may see
  for (int64_t j = middle_begin; j < middle_end; ++j) {
    if (!s.HiddenFromGroup(b, i, kv_head, j)) unmasked.push_back(j);
  }
  const int64_t first_head = kv_head * s.group;
  std::vector<double> score(s.T_cap, -kInfinity);

  if (m.name == "hash") {
    std::vector<std::vector<int64_t>> query_buckets(s.group, std::vector<int64_t>(m.hash_rounds));
    for (int64_t g = 0; g < s.group; ++g) {
      for (int64_t r = 0; r < m.hash_rounds; ++r) {
        query_buckets[g][r] = Bucket(m, kv_head, r, s.RawQuery(b, i, first_head + g), s.D);
      }
    }
    std::vector<int64_t> candidates;
    for (int64_t j : unmasked) {
      int64_t rounds = 0;
      for (int64_t r = 0; r < m.hash_rounds; ++r) {
        bool match = false;
        for (int64_t g = 0; g < s.group; ++g) match |= s.StateRow(b, kv_head, j)[r] == query_buckets[g][r];
        rounds += match;
      }
      if (rounds > 0) {
        score[j] = static_cast<double>(rounds);
        candidates.push_back(j);
      }
    }
    // Prefill: every matching key; decode: the k matching in most rounds, later positions first.
    for (int64_t j : prefill ? candidates : TopK(candidates, score, k, /*later_first=*/true)) keys[j] = 1;
    return keys;
  }

  if (m.name == "hyper") {
    // sortLSH: the middle keys ordered by (rank of their code, position), every code computed here.
    auto rank_of = [&](const double* x) {
      int64_t code = 0;
      for (int64_t c = 0; c < m.hyper_bits; ++c) {
        double product = 0.0;
        for (int64_t d = 0; d < s.D; ++d) product += x[d] * m.hyper_hyperplanes[(kv_head * s.D + d) * m.hyper_bits + c];
        if (product > 0.0) code |= int64_t{1} << c;
      }
      int64_t rank = code;  // inverse Gray code
      for (int64_t shifted = code >> 1; shifted != 0; shifted >>= 1) rank ^= shifted;
      return rank;
    };
    std::vector<std::pair<int64_t, int64_t>> order;  // (rank, position)
    for (int64_t j = middle_begin; j < middle_end; ++j) order.push_back({rank_of(s.CachedKey(b, kv_head, j)), j});
    std::sort(order.begin(), order.end());
    const int64_t lsh = (k + 1) / 2, samples = k - lsh, per_head = (lsh + s.group - 1) / s.group;
    const int64_t size = static_cast<int64_t>(order.size());
    for (int64_t h = first_head; h < first_head + s.group; ++h) {
      const int64_t rank = rank_of(AttendedQuery(p, s.seq, b, i, h, m.stored_query).data());
      int64_t left = 0;  // the query goes after every key of a rank up to its own
      while (left < size && order[left].first <= rank) ++left;
      int64_t right = left--;
      auto next = [&](bool from_left) -> int64_t {  // the nearest key on one side not hidden from the group
        while (from_left ? left >= 0 : right < size) {
          const int64_t j = order[from_left ? left-- : right++].second;
          if (!s.HiddenFromGroup(b, i, kv_head, j)) return j;
        }
        return -1;
      };
      bool left_turn = true;
      for (int64_t taken = 0; taken < per_head; ++taken) {
        int64_t j = next(left_turn);
        if (j < 0) j = next(!left_turn);  // that side ran out: the other one
        if (j < 0) break;
        keys[j] = 1;
        left_turn = !left_turn;
      }
    }
    const int64_t middle_size = middle_end - middle_begin;
    for (int64_t t = 0; t < samples; ++t) {
      const int64_t j = middle_begin + (2 * t + 1) * middle_size / (2 * samples);
      if (!s.HiddenFromGroup(b, i, kv_head, j)) keys[j] = 1;
    }
    return keys;
  }

  if (m.name == "topk" || m.name == "loki") {
    for (int64_t j : unmasked) {
      for (int64_t h = first_head; h < first_head + s.group; ++h) {
        const double approximate =
            m.name == "topk" ? Dot(AttendedQuery(p, s.seq, b, i, h).data(), s.CachedKey(b, kv_head, j), s.D)
                             : Dot(Project(m, kv_head, s.RawQuery(b, i, h), s.D).data(), s.StateRow(b, kv_head, j), m.rank);
        score[j] = std::max(score[j], s.scale * approximate);
      }
    }
    for (int64_t j : TopK(unmasked, score, k, /*later_first=*/false)) keys[j] = 1;
    return keys;
  }

  // quest and saap: units (pages, clusters) taken in rank order until they hold k middle keys.
  std::vector<int64_t> unit_of(s.T_cap, -1);
  std::vector<double> unit_score;
  if (m.name == "quest") {
    unit_score.assign(s.state_rows, -kInfinity);
    for (int64_t j = middle_begin; j < middle_end; ++j) unit_of[j] = j / m.page_size;
    for (int64_t page = middle_begin / m.page_size; page * m.page_size < middle_end; ++page) {
      const double* minimum = s.StateRow(b, kv_head, page);
      const double* maximum = minimum + s.D;
      for (int64_t h = first_head; h < first_head + s.group; ++h) {
        const std::vector<double> q = AttendedQuery(p, s.seq, b, i, h);
        double bound = 0.0;
        for (int64_t d = 0; d < s.D; ++d) bound += std::max(q[d] * minimum[d], q[d] * maximum[d]);
        unit_score[page] = std::max(unit_score[page], s.scale * bound);
      }
    }
  } else {  // saap
    const int64_t M = m.hidden, C = m.clusters;
    unit_score.assign(C, 0.0);
    for (int64_t j = middle_begin; j < middle_end; ++j) unit_of[j] = static_cast<int64_t>(s.StateRow(b, kv_head, j)[0]);
    for (int64_t h = first_head; h < first_head + s.group; ++h) {
      const double* q = s.RawQuery(b, i, h);
      std::vector<double> hidden(M), logits(C);
      for (int64_t u = 0; u < M; ++u) {
        double sum = m.classifier_bias[h * M + u];
        for (int64_t d = 0; d < s.D; ++d) sum += q[d] * m.classifier_weights[(h * s.D + d) * M + u];
        hidden[u] = std::max(sum, 0.0);
      }
      for (int64_t c = 0; c < C; ++c) {
        double sum = m.classifier_output[(h * (M + 1) + M) * C + c];
        for (int64_t u = 0; u < M; ++u) sum += hidden[u] * m.classifier_output[(h * (M + 1) + u) * C + c];
        logits[c] = sum;
      }
      const double largest = *std::max_element(logits.begin(), logits.end());
      double total = 0.0;
      for (double logit : logits) total += std::exp(logit - largest);
      for (int64_t c = 0; c < C; ++c) unit_score[c] = std::max(unit_score[c], std::exp(logits[c] - largest) / total);
    }
  }
  std::vector<int64_t> held(unit_score.size(), 0);  // middle keys per unit
  for (int64_t j = middle_begin; j < middle_end; ++j) ++held[unit_of[j]];
  std::vector<int64_t> order;
  for (int64_t unit = 0; unit < static_cast<int64_t>(held.size()); ++unit) {
    if (held[unit] > 0) order.push_back(unit);
  }
  order = TopK(order, unit_score, static_cast<int64_t>(order.size()), /*later_first=*/false);
  std::vector<uint8_t> taken(unit_score.size(), 0);
  int64_t total = 0;
  for (size_t index = 0; index < order.size() && total < k; ++index) {
    taken[order[index]] = 1;
    total += held[order[index]];
  }
  for (int64_t j = middle_begin; j < middle_end; ++j) keys[j] = taken[unit_of[j]];
  return keys;
}

// block prefill: the keys of query head h's kept key blocks, for the rows of each query block.
void BlockSelection(const Step& s, std::vector<uint8_t>* attended) {
  const ReferenceProblem& p = s.p;
  const ReferenceMethod& m = s.m;
  const int64_t S = p.query_length, bs = m.block_size;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t key_count = s.seq.past[b] + s.seq.appended[b];
    for (int64_t h = 0; h < p.num_heads; ++h) {
      const int64_t kv_head = h / s.group;
      for (int64_t first_row = 0; first_row < S; first_row += bs) {
        const int64_t last_row = std::min({S, first_row + bs, s.seq.rows[b]});  // exclusive
        if (first_row >= last_row) continue;
        int64_t begin = s.T_cap, end = 0;  // the keys any row of the block sees
        for (int64_t i = first_row; i < last_row; ++i) {
          for (int64_t j = 0; j < s.T_cap; ++j) {
            if (Sees(p, s.seq, b, i, j)) {
              begin = std::min(begin, j);
              end = std::max(end, j + 1);
            }
          }
        }
        if (begin >= end) continue;
        int64_t first_row_keys = 0;
        for (int64_t j = 0; j < s.T_cap; ++j) first_row_keys += Sees(p, s.seq, b, first_row, j);
        std::vector<uint8_t> kept_block((end - 1) / bs + 1, 0);
        if (first_row_keys < m.dense_below) {
          std::fill(kept_block.begin(), kept_block.end(), 1);
        } else {
          std::vector<double> mean_query(s.D, 0.0);
          for (int64_t i = first_row; i < last_row; ++i) {
            const std::vector<double> q = AttendedQuery(p, s.seq, b, i, h);
            for (int64_t d = 0; d < s.D; ++d) mean_query[d] += q[d] / static_cast<double>(last_row - first_row);
          }
          const int64_t first_block = begin / bs, end_block = (end - 1) / bs + 1;
          std::vector<double> score(end_block, -kInfinity);
          for (int64_t c = first_block; c < end_block; ++c) {
            const int64_t block_end = std::min(key_count, (c + 1) * bs);
            std::vector<double> mean_key(s.D, 0.0);
            const double keys_in_block = static_cast<double>(block_end - c * bs);
            for (int64_t j = c * bs; j < block_end; ++j) {
              for (int64_t d = 0; d < s.D; ++d) mean_key[d] += s.CachedKey(b, kv_head, j)[d] / keys_in_block;
            }
            score[c] = s.scale * Dot(mean_query.data(), mean_key.data(), s.D);
          }
          std::vector<int64_t> order(end_block - first_block);
          std::iota(order.begin(), order.end(), first_block);
          order = TopK(order, score, static_cast<int64_t>(order.size()), /*later_first=*/false);
          double total = 0.0;
          for (int64_t c : order) total += std::exp(score[c] - score[order[0]]);
          double mass = 0.0;
          for (int64_t c : order) {
            kept_block[c] = 1;
            mass += std::exp(score[c] - score[order[0]]) / total;
            if (mass >= m.gamma) break;
          }
          kept_block[first_block] |= first_block == 0;  // the block holding position 0
          const int64_t first_position = s.seq.past[b] + first_row, last_position = s.seq.past[b] + last_row - 1;
          const int64_t last_diagonal = std::min(end_block - 1, last_position / bs);
          for (int64_t c = std::max(first_block, first_position / bs); c <= last_diagonal; ++c) {
            kept_block[c] = 1;  // the diagonal
          }
        }
        for (int64_t i = first_row; i < last_row; ++i) {
          for (int64_t j = 0; j < s.T_cap; ++j) {
            if (Sees(p, s.seq, b, i, j) && kept_block[j / bs]) {
              (*attended)[((b * S + i) * p.num_heads + h) * s.T_cap + j] = 1;
            }
          }
        }
      }
    }
  }
}

}  // namespace

int64_t ReferenceStateRows(const ReferenceMethod& m, int64_t length) {
  if (m.name == "quest") return (length + m.page_size - 1) / m.page_size;
  return m.name == "loki" || m.name == "saap" || m.name == "hash" ? length : 0;
}

int64_t ReferenceStateWidth(const ReferenceMethod& m, int64_t head_size) {
  if (m.name == "quest") return 2 * head_size;
  if (m.name == "loki") return m.rank;
  if (m.name == "saap") return 1;
  return m.name == "hash" ? m.hash_rounds : 0;
}

std::vector<double> ReferenceState(const ReferenceMethod& m, int64_t batch, int64_t kv_num_heads, int64_t D,
                                   int64_t length, const std::vector<int64_t>& key_counts,
                                   const std::vector<double>& cached_keys, const std::vector<double>& raw_keys) {
  const int64_t rows = ReferenceStateRows(m, length), width = ReferenceStateWidth(m, D);
  std::vector<double> state(batch * kv_num_heads * rows * width, 0.0);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < kv_num_heads; ++h) {
      for (int64_t j = 0; j < key_counts[b]; ++j) {
        const double* cached = &cached_keys[((b * kv_num_heads + h) * length + j) * D];
        const double* raw = &raw_keys[((b * kv_num_heads + h) * length + j) * D];
        if (m.name == "quest") {
          double* minimum = &state[((b * kv_num_heads + h) * rows + j / m.page_size) * width];
          for (int64_t d = 0; d < D; ++d) {
            const bool first = j % m.page_size == 0;
            minimum[d] = first ? cached[d] : std::min(minimum[d], cached[d]);
            minimum[D + d] = first ? cached[d] : std::max(minimum[D + d], cached[d]);
          }
          continue;
        }
        double* row = &state[((b * kv_num_heads + h) * rows + j) * width];
        if (m.name == "loki") {
          const std::vector<double> summary = Project(m, h, raw, D);
          std::copy(summary.begin(), summary.end(), row);
        } else if (m.name == "saap") {
          row[0] = static_cast<double>(NearestCentroid(m, h, raw, D));
        } else if (m.name == "hash") {
          for (int64_t r = 0; r < m.hash_rounds; ++r) row[r] = static_cast<double>(Bucket(m, h, r, raw, D));
        }
      }
    }
  }
  return state;
}

std::vector<uint8_t> ReferenceSelection(const ReferenceProblem& p, const ReferenceMethod& m,
                                        const std::vector<double>& present_key, const std::vector<double>& state) {
  const ReferenceSequences seq = SequencesOf(p);
  const Step s{p, m, present_key, state, seq, seq.T_cap, p.head_size, p.num_heads / p.kv_num_heads,
               ReferenceStateRows(m, seq.T_cap), ReferenceStateWidth(m, p.head_size),
               p.scale ? *p.scale : 1.0 / std::sqrt(static_cast<double>(p.head_size))};
  const int64_t S = p.query_length;
  std::vector<uint8_t> attended(p.batch * S * p.num_heads * s.T_cap, 0);
  if (m.name == "block" && S > 1) {
    BlockSelection(s, &attended);
    return attended;
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t i = 0; i < seq.rows[b]; ++i) {
      for (int64_t kv_head = 0; kv_head < p.kv_num_heads; ++kv_head) {
        const std::vector<uint8_t> keys = GroupSelection(s, b, i, kv_head);
        for (int64_t h = kv_head * s.group; h < (kv_head + 1) * s.group; ++h) {
          std::copy(keys.begin(), keys.end(), attended.begin() + ((b * S + i) * p.num_heads + h) * s.T_cap);
        }
      }
    }
  }
  return attended;
}

}  // namespace ortsparse::testing
