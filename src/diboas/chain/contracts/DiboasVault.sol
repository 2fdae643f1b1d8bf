// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "./ERC20.sol";

interface IERC20Minimal {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @notice An ERC-4626 tokenised vault over one ERC-20 asset.
/// @dev totalAssets() is the vault's own balance of the asset, so yield arrives by transfer
///      (a strategy's harvest, or a test donating tokens) and raises the share price for every
///      holder at once. One virtual share and one virtual asset (the OpenZeppelin offset 0
///      scheme) make the first-depositor inflation attack unprofitable. Rounding always
///      favours the vault: fewer shares out, more shares in.
contract DiboasVault is ERC20 {
    IERC20Minimal public immutable asset;

    event Deposit(address indexed sender, address indexed owner, uint256 assets, uint256 shares);
    event Withdraw(
        address indexed sender,
        address indexed receiver,
        address indexed owner,
        uint256 assets,
        uint256 shares
    );

    error ExceededMaxWithdraw(address owner, uint256 assets, uint256 max);
    error ExceededMaxRedeem(address owner, uint256 shares, uint256 max);
    error ZeroShares();
    error TransferFailed();

    constructor(address asset_, string memory name_, string memory symbol_, uint8 decimals_)
        ERC20(name_, symbol_, decimals_)
    {
        asset = IERC20Minimal(asset_);
    }

    function totalAssets() public view returns (uint256) {
        return asset.balanceOf(address(this));
    }

    function convertToShares(uint256 assets) public view returns (uint256) {
        return _toShares(assets, false);
    }

    function convertToAssets(uint256 shares) public view returns (uint256) {
        return _toAssets(shares, false);
    }

    function maxDeposit(address) external pure returns (uint256) {
        return type(uint256).max;
    }

    function maxMint(address) external pure returns (uint256) {
        return type(uint256).max;
    }

    function maxWithdraw(address owner) public view returns (uint256) {
        return _toAssets(balanceOf[owner], false);
    }

    function maxRedeem(address owner) public view returns (uint256) {
        return balanceOf[owner];
    }

    function previewDeposit(uint256 assets) public view returns (uint256) {
        return _toShares(assets, false);
    }

    function previewMint(uint256 shares) public view returns (uint256) {
        return _toAssets(shares, true);
    }

    function previewWithdraw(uint256 assets) public view returns (uint256) {
        return _toShares(assets, true);
    }

    function previewRedeem(uint256 shares) public view returns (uint256) {
        return _toAssets(shares, false);
    }

    function deposit(uint256 assets, address receiver) external returns (uint256 shares) {
        shares = previewDeposit(assets);
        if (shares == 0) revert ZeroShares();
        _enter(receiver, assets, shares);
    }

    function mint(uint256 shares, address receiver) external returns (uint256 assets) {
        if (shares == 0) revert ZeroShares();
        assets = previewMint(shares);
        _enter(receiver, assets, shares);
    }

    function withdraw(uint256 assets, address receiver, address owner)
        external
        returns (uint256 shares)
    {
        uint256 max = maxWithdraw(owner);
        if (assets > max) revert ExceededMaxWithdraw(owner, assets, max);
        shares = previewWithdraw(assets);
        _exit(receiver, owner, assets, shares);
    }

    function redeem(uint256 shares, address receiver, address owner)
        external
        returns (uint256 assets)
    {
        uint256 max = maxRedeem(owner);
        if (shares > max) revert ExceededMaxRedeem(owner, shares, max);
        assets = previewRedeem(shares);
        _exit(receiver, owner, assets, shares);
    }

    function _enter(address receiver, uint256 assets, uint256 shares) private {
        // Pull first, mint after: a failing or re-entering token cannot mint unpaid shares.
        if (!asset.transferFrom(msg.sender, address(this), assets)) revert TransferFailed();
        _mint(receiver, shares);
        emit Deposit(msg.sender, receiver, assets, shares);
    }

    function _exit(address receiver, address owner, uint256 assets, uint256 shares) private {
        if (msg.sender != owner) _spendAllowance(owner, msg.sender, shares);
        _burn(owner, shares);
        if (!asset.transfer(receiver, assets)) revert TransferFailed();
        emit Withdraw(msg.sender, receiver, owner, assets, shares);
    }

    function _toShares(uint256 assets, bool roundUp) private view returns (uint256) {
        return _mulDiv(assets, totalSupply + 1, totalAssets() + 1, roundUp);
    }

    function _toAssets(uint256 shares, bool roundUp) private view returns (uint256) {
        return _mulDiv(shares, totalAssets() + 1, totalSupply + 1, roundUp);
    }

    function _mulDiv(uint256 x, uint256 y, uint256 d, bool roundUp) private pure returns (uint256) {
        uint256 product = x * y; // checked: amounts of a 6-decimal token never approach 2^128
        uint256 q = product / d;
        return roundUp && q * d < product ? q + 1 : q;
    }
}
