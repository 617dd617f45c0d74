"""What makes a folder a SPLADE sparse encoder (sentence-transformers' SparseEncoder: naver/splade-*, the
opensearch-project/opensearch-neural-sparse-encoding-v1/v2 bi-encoders, ...), read from its files: ``modules.json`` lists
an MLMTransformer (a masked LM) and a SpladePooling, whose config says how the vocabulary-sized vector is pooled, or an
inference-free one's Router (``router_config.json``: a SparseStaticEmbedding for queries, those two for documents, each in
its subfolder); ``config_sentence_transformers.json`` holds the prompts and the similarity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from QEfficient.loading.sentence_transformers_files import module_kind, read_json, read_module_weights, sentence_bert_config, st_modules

# modules by class name: sentence-transformers writes them as sentence_transformers.sparse_encoder.models.MLMTransformer
# (5.3), ...sparse_encoder.modules.mlm_transformer.MLMTransformer (5.4 on), a Router's types with the class name twice;
# SPLADE is a masked LM (MLMTransformer, or from 5.4 a Transformer) -> SpladePooling (_splade_kinds)
STATIC_MODULE = "SparseStaticEmbedding"  # an inference-free SparseEncoder's query side: a weight per token
ROUTER = "Router"
_SPARSE_PACKAGE = "sentence_transformers.sparse_encoder."


def _splade_kinds(kinds: list[str]) -> bool:
    """Whether the modules' class names are SPLADE's: a masked LM (MLMTransformer, or 5.4's Transformer) -> SpladePooling."""
    return len(kinds) == 2 and kinds[0] in ("MLMTransformer", "Transformer") and kinds[1] == "SpladePooling"


@dataclass(frozen=True)
class SpladeSettings:
    """SpladePooling's config and the MLMTransformer's: log(1 + relu(logits)) (twice for ``log1p_relu``) at the attended
    tokens, then the max or sum over them; inputs truncated to ``max_seq_length``, lowercased where ``do_lower_case``."""

    pooling_strategy: str = "max"
    activation_function: str = "relu"
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: tuple[tuple[str, str], ...] = (("query", ""), ("document", ""))  # SparseEncoder's, then the folder's
    default_prompt_name: str | None = None
    similarity_fn_name: str = "dot"
    # an inference-free SparseEncoder's (a Router): the masked LM's subfolder, its routes (the query one's SparseStaticEmbedding
    # subfolder) and the route taken when encode() names no task; "" and None for a plain SPLADE folder
    model_folder: str = ""
    document_route: str | None = None
    query_route: str | None = None
    query_folder: str = ""
    default_route: str | None = None
    max_active_dims: int | None = None  # each vector's largest values kept by default (saved from sentence-transformers 5.4 on)


def is_sparse_encoder_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds a sentence-transformers SparseEncoder: its config says so, or it lists a SparseEncoder
    module (an inference-free one's modules.json lists only its Router)."""
    if not folder or not Path(folder).is_dir():
        return False
    config = read_json(Path(folder) / "config_sentence_transformers.json")
    if isinstance(config, dict) and config.get("model_type") == "SparseEncoder":
        return True
    return any(str(m.get("type", "")).startswith(_SPARSE_PACKAGE) for m in st_modules(folder) or [])


def is_inference_free_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` is a SparseEncoder whose modules.json lists a Router alone (opensearch's inference-free doc-* models)."""
    kinds = [module_kind(m) for m in st_modules(Path(folder)) or []] if folder else []
    return kinds == [ROUTER]


def is_masked_lm_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds a bare masked LM's checkpoint (no modules.json; its config's architectures ...ForMaskedLM),
    which sentence-transformers' SparseEncoder runs as SPLADE with its defaults."""
    if not folder or st_modules(Path(folder)) is not None:
        return False
    config = read_json(Path(folder) / "config.json")
    architectures = config.get("architectures") if isinstance(config, dict) else None
    return bool(architectures) and any(str(a).endswith("ForMaskedLM") for a in architectures)


def read_splade_folder(folder: str | Path) -> SpladeSettings:
    """The folder's SPLADE settings (an inference-free one's routes too; a bare masked LM's: SparseEncoder's defaults, max
    pooling of relu); a ValueError saying why for a SparseEncoder this does not run (a Router of other routes, a sparse
    autoencoder over dense embeddings)."""
    folder = Path(folder)
    if is_masked_lm_folder(folder):
        return SpladeSettings()
    modules = st_modules(folder) or []
    kinds = [module_kind(m) for m in modules]
    routes: dict = {}
    if kinds == [ROUTER]:  # inference-free: its document route is SPLADE's modules, its query route a SparseStaticEmbedding
        modules, routes = _router_routes(folder, modules[0])
        kinds = [module_kind(m) for m in modules]
    if not _splade_kinds(kinds):
        names = " -> ".join(module_kind(m) for m in modules) or "no modules.json"
        raise ValueError(
            f"{folder} runs {names}; QEfficient runs SPLADE sparse encoders (MLMTransformer -> SpladePooling, or an "
            "inference-free Router of those and a SparseStaticEmbedding), not a sparse autoencoder over dense embeddings."
        )
    pooling = read_json(folder / str(modules[1].get("path", "")) / "config.json") or {}
    strategy, activation = pooling.get("pooling_strategy", "max"), pooling.get("activation_function", "relu")
    if strategy not in ("max", "sum") or activation not in ("relu", "log1p_relu"):
        raise ValueError(
            f"SpladePooling with {strategy!r} pooling and {activation!r} is not sentence-transformers' (max or sum; relu or log1p_relu)."
        )
    transformer = sentence_bert_config(folder, modules[0])
    config = read_json(folder / "config_sentence_transformers.json") or {}
    prompts = {"query": "", "document": ""} | (config.get("prompts") or {})
    similarity = config.get("similarity_fn_name") or "dot"
    if similarity not in ("dot", "cosine"):
        raise ValueError(f"This SparseEncoder scores by {similarity!r}; QEfficient scores by 'dot' or 'cosine'.")
    default = config.get("default_prompt_name")
    active = config.get("max_active_dims")
    if active is not None and (type(active) is not int or active < 1):
        raise ValueError(f"This SparseEncoder's max_active_dims must be a positive integer, got {active!r}.")
    if default is not None and default not in prompts:
        raise ValueError(f"This SparseEncoder's default prompt name {default!r} is not among its prompts {sorted(prompts)}.")
    return SpladeSettings(
        strategy,
        activation,
        transformer.get("max_seq_length"),
        bool(transformer.get("do_lower_case")),
        tuple(prompts.items()),
        default,
        similarity,
        model_folder=str(modules[0].get("path", "")),
        max_active_dims=active,
        **routes,
    )


def _mapped_task(key: str) -> str | None:
    """The task of a Router's ``route_mappings`` key, saved as the repr of a (task, modality) tuple; None for other keys."""
    import ast

    try:
        parsed = ast.literal_eval(key)
    except (ValueError, SyntaxError):
        return None
    return parsed[0] if isinstance(parsed, tuple) and len(parsed) == 2 and isinstance(parsed[0], str) else None


def _router_routes(folder: Path, router: dict) -> tuple[list[dict], dict]:
    """An inference-free SparseEncoder's Router (its ``router_config.json``, as sentence-transformers saves it): the document
    route's modules (as modules.json lists them, each in its subfolder) and the routes' names, the query route's
    SparseStaticEmbedding subfolder and the default route; a ValueError saying why for other routes."""
    where = folder / str(router.get("path", ""))
    config = read_json(where / "router_config.json") or read_json(where / "config.json") or {}
    types, structure = config.get("types") or {}, config.get("structure") or {}
    kinds = {name: [module_kind({"type": types.get(i, "")}) for i in ids] for name, ids in structure.items()}
    static = [name for name, route in kinds.items() if route == [STATIC_MODULE]]
    splade = [name for name, route in kinds.items() if _splade_kinds(route)]
    if len(structure) != 2 or len(static) != 1 or len(splade) != 1:
        raise ValueError(
            f"{folder}'s Router routes {kinds or 'nothing'}; QEfficient runs an inference-free SparseEncoder's two routes: "
            "a SparseStaticEmbedding and MLMTransformer -> SpladePooling."
        )
    parameters = config.get("parameters") or {}
    mappings = parameters.get("route_mappings") or {}
    if any(_mapped_task(key) != route for key, route in mappings.items()):  # (a task mapped to its own route is the default)
        raise ValueError(f"{folder}'s Router maps tasks or modalities to other routes ({mappings}), which QEfficient does not follow.")
    default = parameters.get("default_route") or (next(iter(structure)) if parameters.get("allow_empty_key", True) else None)
    if default is not None and default not in structure:
        raise ValueError(f"{folder}'s Router's default route {default!r} is not among its routes {list(structure)}.")
    modules = [{"type": types[i], "path": str((where / i).relative_to(folder))} for i in structure[splade[0]]]
    query_folder = str((where / structure[static[0]][0]).relative_to(folder))
    routes = dict(document_route=splade[0], query_route=static[0], query_folder=query_folder, default_route=default)
    return modules, routes


def read_static_weights(folder: Path, settings: SpladeSettings):
    """The query route's SparseStaticEmbedding weights (one per token id), as float32."""
    where = folder / settings.query_folder
    config = read_json(where / "config.json") or {}
    if str(config.get("path", "")).endswith(".json"):  # sentence-transformers then reads the token weights from that file
        raise ValueError(f"{where}'s SparseStaticEmbedding takes its weights from {config['path']!r}, an idf.json, which is not read here.")
    try:
        weights = read_module_weights(where)
    except (OSError, ValueError) as err:
        raise ValueError(f"{where} holds no SparseStaticEmbedding weights: {err}") from None
    if "weight" not in weights:
        raise ValueError(f"{where} holds no SparseStaticEmbedding 'weight', but {sorted(weights)}.")
    return weights["weight"].reshape(-1)


def serving_settings(settings: SpladeSettings, config) -> dict:
    """What a server reads of a SPLADE model besides its graph and tokenizer (kept in its artifact, so a server on the
    artifact alone reads them there): the pooling, the lowercasing, whether queries take another route (an inference-free
    model), and the [CLS] and [SEP] ids its ``config`` names (vLLM's SPLADE pooler leaves those tokens out)."""
    pooling = {"pooling_strategy": settings.pooling_strategy, "activation_function": settings.activation_function}
    named = {name: getattr(config, name, None) for name in ("cls_token_id", "sep_token_id")}
    return pooling | {"do_lower_case": settings.do_lower_case, "inference_free": settings.query_route is not None} | named
