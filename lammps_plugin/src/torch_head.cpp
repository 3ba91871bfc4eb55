/* mliap_torch LAMMPS plugin: per-element energy heads in libtorch (see torch_head.h). */
#include "torch_head.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <limits>
#include <stdexcept>

namespace mliap_torch {

c10::impl::GenericDict read_model_dict(const std::vector<char> &bytes)
{
  c10::IValue value = torch::jit::pickle_load(bytes);
  if (!value.isGenericDict()) throw std::runtime_error("the file does not hold a dict (not an mliap_torch plugin model)");
  return value.toGenericDict();
}

c10::IValue require(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where)
{
  auto it = dict.find(c10::IValue(key));
  if (it == dict.end()) throw std::runtime_error(where + ": missing field '" + key + "'");
  return it->value();
}

at::Tensor require_tensor(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where,
                          int64_t numel)
{
  c10::IValue value = require(dict, key, where);
  if (!value.isTensor()) throw std::runtime_error(where + ": field '" + key + "' is not a tensor");
  at::Tensor t = value.toTensor().to(at::kDouble).contiguous();
  if (numel >= 0 && t.numel() != numel)
    throw std::runtime_error(where + ": field '" + key + "' has " + std::to_string(t.numel()) + " values, expected " +
                             std::to_string(numel));
  return t;
}

TorchHead::TorchHead(const c10::impl::GenericDict &settings, int num_elements, int num_descriptors)
{
  const std::string where = "head";
  kind_ = require(settings, "type", where).toStringRef();
  const int64_t n = num_elements, k = num_descriptors;
  if (kind_ == "linear" || kind_ == "quadratic") {
    bias_ = require_tensor(settings, "bias", where, n);
    weight_ = require_tensor(settings, "weight", where, n * k).view({n, k});
    if (kind_ == "quadratic") {
      const int64_t nq = k * (k + 1) / 2;
      at::Tensor quadratic = require_tensor(settings, "quadratic", where, n * nq).view({n, nq});
      // the .snapcoeff upper triangle (β_aa on the diagonal, β_ab above) as a symmetric Q
      at::Tensor ab = at::triu_indices(k, k, 0, at::kLong);
      for (int64_t e = 0; e < n; e++) {
        at::Tensor q = at::zeros({k, k}, at::kDouble);
        q.index_put_({ab[0], ab[1]}, quadratic[e]);
        quadratic_matrix_.push_back((q + q.t() - at::diag(q.diagonal())).contiguous());
      }
    }
  } else if (kind_ == "mlp") {
    shift_ = require_tensor(settings, "shift", where, k);
    scale_ = require_tensor(settings, "scale", where, k);
    offset_ = require_tensor(settings, "offset", where, n);
    if (require(settings, "linear_term", where).toBool())
      linear_term_ = require_tensor(settings, "linear", where, n * k).view({n, k});
    activation_ = require(settings, "activation", where).toStringRef();
    if (activation_ != "silu" && activation_ != "tanh" && activation_ != "relu" && activation_ != "softplus" &&
        activation_ != "gelu")
      throw std::runtime_error(where + ": unknown activation '" + activation_ + "'");
    c10::List<c10::IValue> networks = require(settings, "networks", where).toList();
    if (static_cast<int64_t>(networks.size()) != n)
      throw std::runtime_error(where + ": 'networks' has " + std::to_string(networks.size()) +
                               " entries, expected one per element (" + std::to_string(n) + ")");
    for (size_t e = 0; e < networks.size(); e++) {
      std::vector<std::pair<at::Tensor, at::Tensor>> layers;
      int64_t width = k;
      for (const c10::IValue &layer : networks.get(e).toList()) {
        c10::List<c10::IValue> wb = layer.toList();
        at::Tensor w = wb.get(0).toTensor().to(at::kDouble).contiguous();
        at::Tensor b = wb.get(1).toTensor().to(at::kDouble).contiguous();
        if (w.dim() != 2 || w.size(1) != width || b.numel() != w.size(0))
          throw std::runtime_error(where + ": layer shapes of element " + std::to_string(e) + " do not chain");
        width = w.size(0);
        layers.emplace_back(w, b);
      }
      if (width != 1) throw std::runtime_error(where + ": the network of element " + std::to_string(e) +
                                               " does not end in one output");
      layers_.push_back(std::move(layers));
    }
  } else {
    throw std::runtime_error(where + ": unknown head type '" + kind_ + "' (this plugin knows linear, quadratic, mlp)");
  }
}

at::Tensor TorchHead::activate(const at::Tensor &x) const
{
  if (activation_ == "silu") return at::silu(x);
  if (activation_ == "tanh") return at::tanh(x);
  if (activation_ == "relu") return at::relu(x);
  if (activation_ == "softplus") return at::softplus(x, 1.0, 20.0);
  return at::gelu(x);
}

at::Tensor TorchHead::mlp_energies(const at::Tensor &B, const at::Tensor &species) const
{
  at::Tensor x = (B - shift_) / scale_;
  at::Tensor e = offset_.index_select(0, species).clone();
  if (linear_term_.defined()) e = e + (x * linear_term_.index_select(0, species)).sum(-1);
  for (size_t el = 0; el < layers_.size(); el++) {
    at::Tensor mask = species == static_cast<int64_t>(el);
    at::Tensor h = x.index({mask});
    const auto &layers = layers_[el];
    for (size_t l = 0; l < layers.size(); l++) {
      h = at::linear(h, layers[l].first, layers[l].second);
      if (l + 1 < layers.size()) h = activate(h);
    }
    e = e.masked_scatter(mask, e.index({mask}) + h.squeeze(-1));
  }
  return e;
}

std::pair<at::Tensor, at::Tensor> TorchHead::energies_and_betas(const at::Tensor &B, const at::Tensor &species) const
{
  if (kind_ == "mlp") {
    at::AutoGradMode grad_mode(true);
    at::Tensor b = B.detach().requires_grad_(true);
    at::Tensor e = mlp_energies(b, species);
    at::Tensor betas = torch::autograd::grad({e.sum()}, {b})[0];
    return {e.detach().contiguous(), betas.contiguous()};
  }
  at::NoGradGuard no_grad;
  at::Tensor betas = weight_.index_select(0, species);
  at::Tensor e = bias_.index_select(0, species) + (B * betas).sum(-1);
  // quadratic: E += ½ B·Q·B and β += Q·B, element by element
  for (size_t el = 0; el < quadratic_matrix_.size(); el++) {
    at::Tensor rows = (species == static_cast<int64_t>(el)).nonzero().squeeze(1);
    at::Tensor b = B.index_select(0, rows);
    at::Tensor qb = at::mm(b, quadratic_matrix_[el]);
    e.index_add_(0, rows, 0.5 * (b * qb).sum(-1));
    betas.index_add_(0, rows, qb);
  }
  return {e.contiguous(), betas.contiguous()};
}

at::Tensor TorchHead::linear_betas(const at::Tensor &species) const
{
  return weight_.index_select(0, species).contiguous();
}

int64_t TorchHead::num_grade_features() const
{
  if (kind_ == "mlp") {
    const int64_t hidden = layers_.front()[layers_.front().size() - 1].first.size(1);
    return 1 + hidden + (linear_term_.defined() ? shift_.numel() : 0);
  }
  const int64_t k = weight_.size(1);
  return 1 + k + (kind_ == "quadratic" ? k * (k + 1) / 2 : 0);
}

at::Tensor TorchHead::grade_features(const at::Tensor &B, const at::Tensor &species) const
{
  at::NoGradGuard no_grad;
  const int64_t natoms = B.size(0);
  at::Tensor ones = at::ones({natoms, 1}, B.options());
  if (kind_ == "linear") return at::cat({ones, B}, 1).contiguous();
  if (kind_ == "quadratic") {
    // quadratic_features: B_a B_b for a <= b (upper triangle row by row), halved on the diagonal
    const int64_t k = B.size(1);
    at::Tensor ab = at::triu_indices(k, k, 0, at::kLong);
    at::Tensor scale = at::where(ab[0] == ab[1], 0.5, 1.0).to(at::kDouble);
    at::Tensor products = B.index_select(1, ab[0]) * B.index_select(1, ab[1]) * scale;
    return at::cat({ones, B, products}, 1).contiguous();
  }
  at::Tensor x = (B - shift_) / scale_;
  const auto &first = layers_.front();
  const int64_t width = first[first.size() - 1].first.size(1);  // the output layer's input: last hidden
  at::Tensor hidden = at::zeros({natoms, width}, B.options());
  for (size_t el = 0; el < layers_.size(); el++) {
    at::Tensor mask = species == static_cast<int64_t>(el);
    at::Tensor h = x.index({mask});
    const auto &layers = layers_[el];
    for (size_t l = 0; l + 1 < layers.size(); l++) h = activate(at::linear(h, layers[l].first, layers[l].second));
    hidden = hidden.masked_scatter(mask.unsqueeze(1), h);
  }
  if (linear_term_.defined()) return at::cat({ones, hidden, x}, 1).contiguous();
  return at::cat({ones, hidden}, 1).contiguous();
}

ActiveSet::ActiveSet(const c10::impl::GenericDict &settings, int num_elements, int64_t num_features)
{
  const std::string where = "active_set";
  const int64_t declared = require(settings, "num_features", where).toInt();
  if (declared != num_features)
    throw std::runtime_error(where + ": " + std::to_string(declared) + " features, the head gives " +
                             std::to_string(num_features));
  c10::List<c10::IValue> inverse = require(settings, "inverse", where).toList();
  if (static_cast<int>(inverse.size()) != num_elements)
    throw std::runtime_error(where + ": 'inverse' has " + std::to_string(inverse.size()) +
                             " entries, expected one per element (" + std::to_string(num_elements) + ")");
  for (size_t e = 0; e < inverse.size(); e++) {
    at::Tensor m = inverse.get(e).toTensor().to(at::kDouble).contiguous();
    if (m.dim() != 2 || m.size(0) != num_features)
      throw std::runtime_error(where + ": the matrix of element " + std::to_string(e) + " is not (" +
                               std::to_string(num_features) + ", r)");
    inverse_.push_back(m);
  }
}

at::Tensor ActiveSet::grades(const at::Tensor &features, const at::Tensor &species) const
{
  at::NoGradGuard no_grad;
  at::Tensor gamma = at::full({features.size(0)}, std::numeric_limits<double>::infinity(), features.options());
  for (size_t el = 0; el < inverse_.size(); el++) {
    if (inverse_[el].size(1) == 0) continue;
    at::Tensor mask = species == static_cast<int64_t>(el);
    at::Tensor c = at::mm(features.index({mask}), inverse_[el]);
    gamma = gamma.masked_scatter(mask, std::get<0>(c.abs().max(1)));
  }
  return gamma.contiguous();
}

}  // namespace mliap_torch
